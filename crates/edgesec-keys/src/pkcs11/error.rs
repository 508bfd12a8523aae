//! PKCS#11 failures (`CKR_*`) mapped to [`KeyError`], with the code named in the log.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::KeyError;

/// A failure inside the backend: a PKCS#11 call, or a key store error decided here.
#[derive(Debug)]
pub(crate) enum Fail {
    Ck(CkError),
    Key(KeyError),
}

impl From<CkError> for Fail {
    fn from(e: CkError) -> Self {
        Fail::Ck(e)
    }
}

impl From<KeyError> for Fail {
    fn from(e: KeyError) -> Self {
        Fail::Key(e)
    }
}

/// The PKCS#11 name of a return value: `SessionHandleInvalid` is `CKR_SESSION_HANDLE_INVALID`.
pub(crate) fn ckr_name(rv: &RvError) -> String {
    match rv {
        RvError::VendorDefined(code) => format!("CKR_VENDOR_DEFINED+{code:#x}"),
        RvError::UnknownErrorCode(code) => format!("CKR_{code:#x}"),
        other => {
            let camel = format!("{other:?}");
            let mut out = String::from("CKR");
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// The C function name: `Function::SignInit` is `C_SignInit`.
pub(crate) fn function_name(f: &Function) -> String {
    format!("C_{f:?}")
}

/// The return value of a failed PKCS#11 call, if that is what `e` is.
pub(crate) fn rv(e: &CkError) -> Option<&RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(rv),
        _ => None,
    }
}

/// Failures after which the sessions or the login are gone (the token was reset, removed or
/// restarted): the pool is re-opened, the user logged in again, and the operation retried once.
pub(crate) fn needs_relogin(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::CryptokiNotInitialized
        )
    )
}

/// Failures after which a cached object handle is stale (someone deleted or re-created the
/// object outside keyd): the cache is dropped and the operation retried once.
pub(crate) fn stale_object(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid)
    )
}

/// One line naming the call and the code, e.g. `C_Login: CKR_PIN_INCORRECT`.
pub(crate) fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("{}: {}", function_name(f), ckr_name(rv)),
        other => other.to_string(),
    }
}

/// The key store error for a failed PKCS#11 call made for `operation` (a short phrase such as
/// "sign"). The call and its `CKR_*` code are logged here; a [`KeyError::Backend`] carries them
/// too, for the key service's own log line, and never reaches a caller.
pub(crate) fn key_error(e: CkError, operation: &str) -> KeyError {
    let what = describe(&e);
    tracing::warn!(operation, pkcs11 = %what, "PKCS#11 call failed");
    match rv(&e) {
        Some(
            RvError::MechanismInvalid
            | RvError::MechanismParamInvalid
            | RvError::FunctionNotSupported
            | RvError::CurveNotSupported,
        ) => KeyError::NotSupported("this operation on this PKCS#11 token"),
        Some(RvError::DataLenRange | RvError::DataInvalid | RvError::KeySizeRange) => {
            KeyError::InvalidInput(format!("the token refused the input ({what})"))
        }
        Some(RvError::KeyTypeInconsistent | RvError::KeyFunctionNotPermitted) => {
            KeyError::WrongAlgorithm(format!("the token refused this use of the key ({what})"))
        }
        _ => KeyError::Backend(format!("PKCS#11 {what} ({operation})")),
    }
}

impl Fail {
    pub(crate) fn into_key_error(self, operation: &str) -> KeyError {
        match self {
            Fail::Key(k) => k,
            Fail::Ck(e) => key_error(e, operation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_in_the_standard() {
        assert_eq!(
            ckr_name(&RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
        assert_eq!(ckr_name(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(&RvError::MechanismInvalid),
            "CKR_MECHANISM_INVALID"
        );
        assert_eq!(
            ckr_name(&RvError::VendorDefined(0x8000_0001)),
            "CKR_VENDOR_DEFINED+0x80000001"
        );
        let e = CkError::Pkcs11(RvError::UserNotLoggedIn, Function::SignInit);
        assert_eq!(describe(&e), "C_SignInit: CKR_USER_NOT_LOGGED_IN");
        assert!(needs_relogin(&e));
        assert!(!stale_object(&e));
        let k = key_error(
            CkError::Pkcs11(RvError::DeviceError, Function::Sign),
            "sign",
        );
        assert_eq!(
            k.to_string(),
            "key store failure: PKCS#11 C_Sign: CKR_DEVICE_ERROR (sign)"
        );
        assert!(matches!(
            key_error(
                CkError::Pkcs11(RvError::MechanismInvalid, Function::SignInit),
                "sign"
            ),
            KeyError::NotSupported(_)
        ));
    }
}
