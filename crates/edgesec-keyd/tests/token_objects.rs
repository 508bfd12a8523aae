//! A key keyd generates on a PKCS#11 token cannot be exported: this test opens the token itself
//! with cryptoki, as any other program on the device could, and asks for the key's value.
//! (Alone in its test binary: SoftHSM reads `SOFTHSM2_CONF` once per process.)

mod common;

use common::{ALL_KEYS, Keyd, SOFTHSM_LIBRARY, V, have_softhsm, pkcs11_store, rt};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use edgesec_keys::{KeyPairAlgorithm, SymmetricUsage};

#[test]
fn keys_generated_on_the_token_cannot_be_exported() {
    if !have_softhsm() {
        return;
    }
    let keyd = Keyd::start_with_token(&format!("{ALL_KEYS}{}", pkcs11_store("keyd-test")));
    let mac = rt().block_on(async {
        let c = &keyd.client;
        c.create_key_pair("ec", Some(KeyPairAlgorithm::EcP256))
            .await
            .unwrap();
        c.create_key_pair("rsa", Some(KeyPairAlgorithm::Rsa2048))
            .await
            .unwrap();
        c.create_key("aes", SymmetricUsage::Aes256Gcm)
            .await
            .unwrap();
        c.create_key("mac", SymmetricUsage::HmacSha256)
            .await
            .unwrap()
    });
    // keyd itself has no way to export a stored key: only derived keys leave it
    let (code, body) = keyd.curl(
        "POST",
        &format!("/derive/export?{V}"),
        Some(&format!("{{\"keyHandle\":\"{}\"}}", mac.key_handle)),
        None,
    );
    assert_eq!(code, 400, "{body}");

    // SAFETY: the only test in this process; set before the library is loaded.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &keyd.softhsm.as_ref().unwrap().conf) };
    let p11 = Pkcs11::new(SOFTHSM_LIBRARY).unwrap();
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = p11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p11.get_token_info(*s).unwrap().label() == "keyd-test")
        .unwrap();
    let session = p11.open_ro_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new("1234".into())))
        .unwrap();
    for (label, class, secret) in [
        ("ec", ObjectClass::PRIVATE_KEY, AttributeType::Value),
        (
            "rsa",
            ObjectClass::PRIVATE_KEY,
            AttributeType::PrivateExponent,
        ),
        ("aes", ObjectClass::SECRET_KEY, AttributeType::Value),
        ("mac", ObjectClass::SECRET_KEY, AttributeType::Value),
        (
            "keyd/handle-key",
            ObjectClass::SECRET_KEY,
            AttributeType::Value,
        ),
    ] {
        let found = session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{label}");
        let attrs = session
            .get_attributes(
                found[0],
                &[
                    AttributeType::Token,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Local,
                ],
            )
            .unwrap();
        for want in [
            Attribute::Token(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::AlwaysSensitive(true),
            Attribute::NeverExtractable(true),
            Attribute::Local(true),
        ] {
            assert!(attrs.contains(&want), "{label}: {want:?} not in {attrs:?}");
        }
        // C_GetAttributeValue of the key's secret is refused (CKR_ATTRIBUTE_SENSITIVE), and
        // making it extractable now is refused too (CKA_EXTRACTABLE can only go to false)
        let info = session.get_attribute_info(found[0], &[secret]).unwrap();
        assert!(
            matches!(info.as_slice(), [AttributeInfo::Sensitive]),
            "{label}: {info:?}"
        );
        assert!(
            session
                .get_attributes(found[0], &[secret])
                .unwrap()
                .is_empty()
        );
    }
    let rw = p11.open_rw_session(slot).unwrap();
    let mac_object = rw
        .find_objects(&[Attribute::Label(b"mac".to_vec())])
        .unwrap()[0];
    assert!(
        rw.update_attributes(mac_object, &[Attribute::Extractable(true)])
            .is_err(),
        "a key was made extractable"
    );
}
