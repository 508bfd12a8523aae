//! RFC 7512 `pkcs11:` URIs, as used for preloaded keys:
//! `pkcs11:token=edgesec;object=factory-key;type=private`.
//!
//! The path attributes (`;`-separated) name the token and the object; the query attributes
//! (`&`-separated) name the module and the PIN. Values are percent-decoded. Unknown standard
//! attributes are refused (RFC 7512 §2.3: vendor attributes start with `x-` and are ignored).

use std::fmt;

use percent_encoding::percent_decode_str;

/// What `type=` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Public,
    Private,
    Cert,
    SecretKey,
    Data,
}

/// A parsed `pkcs11:` URI. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub object_type: Option<ObjectType>,
    pub slot_id: Option<u64>,
    pub slot_description: Option<String>,
    pub slot_manufacturer: Option<String>,
    pub library_manufacturer: Option<String>,
    pub library_description: Option<String>,
    pub library_version: Option<String>,
    pub module_name: Option<String>,
    pub module_path: Option<String>,
    pub pin_source: Option<String>,
    /// True when the URI carried `pin-value`; the value itself is never kept.
    pub has_pin_value: bool,
}

/// Why a URI was refused; the text names the attribute.
#[derive(Debug, PartialEq, Eq)]
pub struct UriError(pub String);

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UriError {}

fn err(why: impl Into<String>) -> UriError {
    UriError(why.into())
}

fn decode(name: &str, value: &str) -> Result<Vec<u8>, UriError> {
    // A bare '%' not followed by two hex digits is an error, not a literal.
    let b = value.as_bytes();
    for (i, _) in value.match_indices('%') {
        if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(err(format!("{name}: bad percent-encoding in {value:?}")));
        }
    }
    Ok(percent_decode_str(value).collect())
}

fn text(name: &str, value: &str) -> Result<String, UriError> {
    String::from_utf8(decode(name, value)?).map_err(|_| err(format!("{name} is not UTF-8")))
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), UriError> {
    if slot.replace(value).is_some() {
        return Err(err(format!("{name} is given twice")));
    }
    Ok(())
}

impl Pkcs11Uri {
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let rest = uri
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("pkcs11:"))
            .map(|_| &uri[7..])
            .ok_or_else(|| err("a PKCS#11 URI starts with \"pkcs11:\""))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| err(format!("path attribute {attr:?} has no '='")))?;
            match name {
                "token" => set(&mut u.token, name, text(name, value)?)?,
                "manufacturer" => set(&mut u.manufacturer, name, text(name, value)?)?,
                "model" => set(&mut u.model, name, text(name, value)?)?,
                "serial" => set(&mut u.serial, name, text(name, value)?)?,
                "object" => set(&mut u.object, name, text(name, value)?)?,
                "id" => set(&mut u.id, name, decode(name, value)?)?,
                "slot-description" => set(&mut u.slot_description, name, text(name, value)?)?,
                "slot-manufacturer" => set(&mut u.slot_manufacturer, name, text(name, value)?)?,
                "library-manufacturer" => {
                    set(&mut u.library_manufacturer, name, text(name, value)?)?
                }
                "library-description" => set(&mut u.library_description, name, text(name, value)?)?,
                "library-version" => set(&mut u.library_version, name, text(name, value)?)?,
                "slot-id" => {
                    let n = text(name, value)?
                        .parse()
                        .map_err(|_| err(format!("slot-id {value:?} is not a number")))?;
                    set(&mut u.slot_id, name, n)?
                }
                "type" => {
                    let t = match text(name, value)?.as_str() {
                        "public" => ObjectType::Public,
                        "private" => ObjectType::Private,
                        "cert" => ObjectType::Cert,
                        "secret-key" => ObjectType::SecretKey,
                        "data" => ObjectType::Data,
                        other => return Err(err(format!("unknown object type {other:?}"))),
                    };
                    set(&mut u.object_type, name, t)?
                }
                n if n.starts_with("x-") => {}
                n => return Err(err(format!("unknown path attribute {n:?}"))),
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| err(format!("query attribute {attr:?} has no '='")))?;
            match name {
                "pin-value" => {
                    if u.has_pin_value {
                        return Err(err("pin-value is given twice"));
                    }
                    u.has_pin_value = true;
                }
                "pin-source" => set(&mut u.pin_source, name, text(name, value)?)?,
                "module-name" => set(&mut u.module_name, name, text(name, value)?)?,
                "module-path" => set(&mut u.module_path, name, text(name, value)?)?,
                n if n.starts_with("x-") => {}
                n => return Err(err(format!("unknown query attribute {n:?}"))),
            }
        }
        Ok(u)
    }

    /// Checks the URI can name one key on the token `token_label` of the library at `library`.
    /// Slot ids are refused (they change: SoftHSM picks random ones), and so is a PIN in the URI
    /// (the PIN belongs in `pin_file`).
    pub fn check_preloaded(&self, token_label: &str, library: &str) -> Result<(), UriError> {
        if self.object.is_none() && self.id.is_none() {
            return Err(err("name the key with object= (its label) or id="));
        }
        if let Some(t) = &self.token
            && t != token_label
        {
            return Err(err(format!(
                "token={t:?} is not the configured token {token_label:?}"
            )));
        }
        if self.slot_id.is_some() {
            return Err(err(
                "slot-id is not supported: slot numbers are not stable; name the token by label",
            ));
        }
        if self.has_pin_value || self.pin_source.is_some() {
            return Err(err(
                "a PIN in the URI is not accepted; keyd logs in with store.pkcs11.pin_file",
            ));
        }
        if let Some(p) = &self.module_path
            && p != library
        {
            return Err(err(format!(
                "module-path={p:?} is not the configured library {library:?}"
            )));
        }
        match self.object_type {
            None | Some(ObjectType::Private | ObjectType::SecretKey) => Ok(()),
            Some(t) => Err(err(format!(
                "type={t:?} is not a key keyd can use; use type=private or type=secret-key"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_examples_and_ours() {
        let u = Pkcs11Uri::parse("pkcs11:token=edgesec;object=factory-key;type=private").unwrap();
        assert_eq!(u.token.as_deref(), Some("edgesec"));
        assert_eq!(u.object.as_deref(), Some("factory-key"));
        assert_eq!(u.object_type, Some(ObjectType::Private));

        // RFC 7512 §3 examples
        let u = Pkcs11Uri::parse("pkcs11:object=my-pubkey;type=public").unwrap();
        assert_eq!(u.object_type, Some(ObjectType::Public));
        let u = Pkcs11Uri::parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(
            u.id.as_deref(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        assert_eq!(u.serial.as_deref(), Some(""));
        let u = Pkcs11Uri::parse(
            "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
        )
        .unwrap();
        assert!(u.has_pin_value);
        let u = Pkcs11Uri::parse("pkcs11:slot-description=Sun%20Metaslot").unwrap();
        assert_eq!(u.slot_description.as_deref(), Some("Sun Metaslot"));
        let u = Pkcs11Uri::parse(
            "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token;library-version=1.23",
        )
        .unwrap();
        assert_eq!(u.library_version.as_deref(), Some("1.23"));
        let u = Pkcs11Uri::parse(
            "pkcs11:token=Software%20PKCS%2311%20softtoken;object=my-key;type=private?module-path=/mnt/libmypkcs11.so.1&pin-source=file:/etc/token_pin",
        )
        .unwrap();
        assert_eq!(u.module_path.as_deref(), Some("/mnt/libmypkcs11.so.1"));
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token_pin"));
        let u = Pkcs11Uri::parse(
            "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("A name with a substring %;"));
        let u = Pkcs11Uri::parse("pkcs11:x-vendor-attr=x;slot-id=5").unwrap();
        assert_eq!(u.slot_id, Some(5));
        assert_eq!(Pkcs11Uri::parse("PKCS11:").unwrap(), Pkcs11Uri::default());
    }

    #[test]
    fn refuses_bad_uris_by_name() {
        for (uri, needle) in [
            ("file:///x", "starts with"),
            ("pkcs11:objekt=x", "unknown path attribute \"objekt\""),
            ("pkcs11:object", "has no '='"),
            ("pkcs11:object=a;object=b", "object is given twice"),
            ("pkcs11:type=key", "unknown object type"),
            ("pkcs11:slot-id=x", "slot-id"),
            ("pkcs11:object=%zz", "percent-encoding"),
            ("pkcs11:object=%ff", "not UTF-8"),
            ("pkcs11:object=a?pin=1", "unknown query attribute"),
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err().0;
            assert!(e.contains(needle), "{uri}: {e}");
        }
    }

    #[test]
    fn preloaded_keys_must_name_one_key_on_our_token() {
        let check = |uri: &str| {
            Pkcs11Uri::parse(uri)
                .unwrap()
                .check_preloaded("edgesec", "/lib/p11.so")
                .map_err(|e| e.0)
        };
        check("pkcs11:token=edgesec;object=k;type=private").unwrap();
        check("pkcs11:id=%01%02").unwrap();
        check("pkcs11:object=k?module-path=/lib/p11.so").unwrap();
        for (uri, needle) in [
            ("pkcs11:token=edgesec", "object="),
            ("pkcs11:token=other;object=k", "not the configured token"),
            ("pkcs11:object=k;slot-id=1", "slot-id"),
            ("pkcs11:object=k?pin-value=1234", "PIN"),
            ("pkcs11:object=k;type=cert", "type=private"),
            (
                "pkcs11:object=k?module-path=/other.so",
                "not the configured library",
            ),
        ] {
            let e = check(uri).unwrap_err();
            assert!(e.contains(needle), "{uri}: {e}");
        }
    }
}
