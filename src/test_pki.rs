//! A throwaway PKI for tests, made with rcgen: a CA, a server certificate for `localhost` and
//! `127.0.0.1`, and a client certificate, all signed by that CA. Shared by the unit tests and
//! (through `#[path]`) the end-to-end tests; it uses nothing of Shoal.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its private key, as PEM text.
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
    /// The DER forms, for a server config.
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

pub struct TestPki {
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    pub server: Pair,
    pub client: Pair,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = params.self_signed(&ca_key).expect("CA certificate");
        let ca = Issuer::new(params, ca_key);
        let leaf = |usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("leaf key");
            let mut params =
                CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                    .expect("leaf params");
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca).expect("leaf certificate");
            Pair {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                cert_der: cert.der().to_vec(),
                key_der: key.serialize_der(),
            }
        };
        TestPki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            server: leaf(ExtendedKeyUsagePurpose::ServerAuth),
            client: leaf(ExtendedKeyUsagePurpose::ClientAuth),
        }
    }
}
