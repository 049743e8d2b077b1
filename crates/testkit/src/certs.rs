//! Generates the test PKI with rcgen: a CA, a server cert for localhost/127.0.0.1, client
//! certs (EC PKCS#8, EC SEC1, RSA PKCS#1, expired, from an unrelated CA) and a backend cert.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Static keys (test-only): ring cannot generate RSA keys, and these pin the PEM flavours.
/// rcgen (on ring) only loads PKCS#8, so each key is also kept in that form for signing.
const RSA_PKCS1_KEY: &str = include_str!("client-rsa-pkcs1.key");
const RSA_PKCS8_KEY: &str = include_str!("client-rsa-pkcs1.pkcs8.key");
const EC_SEC1_KEY: &str = include_str!("client-ec-sec1.key");
const EC_SEC1_PKCS8_KEY: &str = include_str!("client-ec-sec1.pkcs8.key");

/// A certificate file and its key file; `name` is the CN (the thing name / MQTT username).
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server: Identity,
    pub backend: Identity,
    /// EC P-256, PKCS#8 key.
    pub client_ec: Identity,
    /// EC P-256, SEC1 ("EC PRIVATE KEY") key.
    pub client_sec1: Identity,
    /// RSA 2048, PKCS#1 ("RSA PRIVATE KEY") key.
    pub client_rsa: Identity,
    /// Valid 2020-01-01 .. 2021-01-01.
    pub client_expired: Identity,
    /// Signed by `other_ca`, which the broker does not trust.
    pub client_foreign: Identity,
    /// A CA unrelated to the broker's.
    pub other_ca: PathBuf,
    /// The test CA's parameters and key (PEM), to issue more client certificates later.
    ca_signer: (CertificateParams, String),
}

type Ca = CertifiedIssuer<'static, KeyPair>;

fn new_ca(name: &str) -> Ca {
    ca_from(name, KeyPair::generate().unwrap())
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn ca_from(name: &str, key: KeyPair) -> Ca {
    CertifiedIssuer::self_signed(ca_params(name), key).unwrap()
}

fn leaf_params(cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// Signs a leaf for `cn` with `ca`; `key_pem` is written verbatim as the key file.
fn issue(dir: &Path, ca: &Ca, params: CertificateParams, key: &KeyPair, key_pem: &str) -> Identity {
    let cn = params
        .distinguished_name
        .get(&DnType::CommonName)
        .map_or_else(
            || "unnamed".to_string(),
            |v| match v {
                rcgen::DnValue::Utf8String(s) => s.clone(),
                other => format!("{other:?}"),
            },
        );
    let cert = params.signed_by(key, ca).unwrap();
    Identity {
        cert: write(dir, &format!("{cn}.crt"), &cert.pem()),
        key: write(dir, &format!("{cn}.key"), key_pem),
        name: cn,
    }
}

fn client(dir: &Path, ca: &Ca, cn: &str) -> Identity {
    let key = KeyPair::generate().unwrap();
    let params = leaf_params(cn, &[], ExtendedKeyUsagePurpose::ClientAuth);
    issue(dir, ca, params, &key, &key.serialize_pem())
}

impl Pki {
    pub fn generate() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        const CA_NAME: &str = "detect-agent test CA";
        let ca_key = KeyPair::generate().unwrap();
        let ca_signer = (ca_params(CA_NAME), ca_key.serialize_pem());
        let ca = ca_from(CA_NAME, ca_key);
        let other = new_ca("unrelated CA");

        let server_key = KeyPair::generate().unwrap();
        let server_params = leaf_params(
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let server = issue(
            d,
            &ca,
            server_params,
            &server_key,
            &server_key.serialize_pem(),
        );

        let sec1_key = KeyPair::from_pem(EC_SEC1_PKCS8_KEY).unwrap();
        let sec1_params = leaf_params("thing-sec1", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let rsa_key = KeyPair::from_pem(RSA_PKCS8_KEY).unwrap();
        let rsa_params = leaf_params("thing-rsa", &[], ExtendedKeyUsagePurpose::ClientAuth);

        let expired_key = KeyPair::generate().unwrap();
        let mut expired_params =
            leaf_params("thing-expired", &[], ExtendedKeyUsagePurpose::ClientAuth);
        expired_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        expired_params.not_after = rcgen::date_time_ymd(2021, 1, 1);

        Pki {
            ca: write(d, "ca.crt", &ca.pem()),
            other_ca: write(d, "other-ca.crt", &other.pem()),
            backend: client(d, &ca, "defender-backend"),
            client_ec: client(d, &ca, "thing-ec"),
            client_sec1: issue(d, &ca, sec1_params, &sec1_key, EC_SEC1_KEY),
            client_rsa: issue(d, &ca, rsa_params, &rsa_key, RSA_PKCS1_KEY),
            client_expired: issue(
                d,
                &ca,
                expired_params,
                &expired_key,
                &expired_key.serialize_pem(),
            ),
            client_foreign: client(d, &other, "thing-foreign"),
            server,
            dir,
            ca_signer,
        }
    }

    /// A client certificate for `cn` signed by the test CA (files `{cn}.crt`, `{cn}.key`).
    pub fn issue_client(&self, cn: &str) -> Identity {
        let (params, key_pem) = &self.ca_signer;
        let signer = KeyPair::from_pem(key_pem).unwrap();
        let issuer = rcgen::Issuer::new(params.clone(), signer);
        let key = KeyPair::generate().unwrap();
        let leaf = leaf_params(cn, &[], ExtendedKeyUsagePurpose::ClientAuth);
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let d = self.dir.path();
        Identity {
            cert: write(d, &format!("{cn}.crt"), &cert.pem()),
            key: write(d, &format!("{cn}.key"), &key.serialize_pem()),
            name: cn.to_string(),
        }
    }

    /// A path inside the PKI directory that does not exist.
    pub fn missing(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
