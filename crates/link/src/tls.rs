//! Owns the MQTT connection settings and the rustls client configuration (ring provider,
//! TLS 1.2/1.3, server always verified against the CA file, optional client cert + key from
//! PEM). Does not open connections (the agent's `publish::session`, the fleet's
//! `service::connection`) and has no switch to skip verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::login::Login;

/// ALPN protocol AWS IoT Core wants for MQTT over port 443.
pub const AWS_MQTT_ALPN: &[u8] = b"x-amzn-mqtt-ca";

/// Everything `client` needs to reach the broker. `client_id` should equal `thing_name`
/// (protocol doc §2.2, §7.1 item 13); `identity` checks that, not this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    pub endpoint: String,
    pub port: u16,
    pub ca_file: PathBuf,
    /// The client certificate login; `None` logs in by user name / password only.
    pub client_cert: Option<ClientCert>,
    /// The user name / password login; `None` sends no credentials in CONNECT.
    pub login: Option<Login>,
    /// Name to verify the server certificate against when it differs from `endpoint`.
    pub tls_server_name: Option<String>,
    pub client_id: String,
    pub thing_name: String,
    /// `json` or `cbor` (protocol doc §2.2).
    pub format_segment: String,
    pub keep_alive_secs: u64,
}

/// A PEM client certificate (chain) and its private key: `[mqtt] cert_file` and `key_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A TLS setup problem; every variant names the file or value involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{role} {path}: cannot read: {source}")]
    Unreadable {
        role: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{role} {path}: no PEM certificate in file")]
    NoCertificate { role: &'static str, path: PathBuf },
    #[error("{role} {path}: malformed PEM: {reason}")]
    BadPem {
        role: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("key file {path}: no private key in file (expected PKCS#8, SEC1 EC or PKCS#1 RSA PEM)")]
    NoKey { path: PathBuf },
    #[error("key file {path}: unusable private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("key file {key}: does not match certificate {cert}")]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("CA file {path}: no usable trust anchor: {reason}")]
    BadRoots { path: PathBuf, reason: String },
    #[error("TLS server name {name:?}: not a valid DNS name or IP address")]
    BadServerName { name: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The ring provider; the only one compiled in (see Cargo.toml).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(role: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable {
        role,
        path: path.to_path_buf(),
        source,
    })
}

/// All certificates in a PEM file, in order; an error when there is none.
pub fn load_certs(
    role: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(role, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            role,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            role,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file: PKCS#8, SEC1 EC or PKCS#1 RSA.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("key file", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => TlsError::BadPem {
            role: "key file",
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

/// The CA file as a root store (every certificate in it is a trust anchor).
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(load_certs("CA file", path)?);
    if added == 0 {
        return Err(TlsError::BadRoots {
            path: path.to_path_buf(),
            reason: format!("none of its {ignored} certificate(s) parse as a trust anchor"),
        });
    }
    Ok(roots)
}

/// Loads the client certificate chain and key and checks that they belong together.
pub fn load_identity(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let chain = load_certs("certificate file", cert_file)?;
    let key = load_key(key_file)?;
    certified_key(chain, key, cert_file, key_file, provider)
}

/// Pairs an already loaded chain and key, checking that the key belongs to the certificate;
/// the paths only name the files in errors.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    rustls::sign::CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            key: key_file.to_path_buf(),
            cert: cert_file.to_path_buf(),
        },
        rustls::Error::InvalidCertificate(reason) => TlsError::BadPem {
            role: "certificate file",
            path: cert_file.to_path_buf(),
            reason: format!("{reason:?}"),
        },
        other => TlsError::BadKey {
            path: key_file.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

/// Builds the client configuration from the files named in `settings`. Called again on each
/// reconnect so a renewed certificate is picked up without a restart.
pub fn client_config(settings: &MqttSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let roots = Arc::new(load_roots(&settings.ca_file)?);
    let identity = match &settings.client_cert {
        Some(c) => Some(load_identity(&c.cert_file, &c.key_file, &provider)?),
        None => None,
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::BadRoots {
            path: settings.ca_file.clone(),
            reason: e.to_string(),
        })?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &settings.tls_server_name {
        None => builder.with_webpki_verifier(webpki),
        Some(name) => {
            let name = ServerName::try_from(name.clone())
                .map_err(|_| TlsError::BadServerName { name: name.clone() })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(RenamedVerifier {
                    inner: webpki,
                    name,
                }))
        }
    };
    let mut config = match identity {
        Some(identity) => builder
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity))),
        None => builder.with_no_client_auth(),
    };
    if settings.port == 443 {
        // AWS IoT Core serves MQTT on 443 only with this ALPN id.
        config.alpn_protocols = vec![AWS_MQTT_ALPN.to_vec()];
    }
    Ok(Arc::new(config))
}

/// Full WebPKI verification, only against a configured name instead of the dialled host
/// (for endpoints reached by IP or through a tunnel). It never weakens verification.
#[derive(Debug)]
struct RenamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for RenamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
