//! HTTPS for the controller's HTTP server (API, dashboard, metrics, tracker, images) through
//! rustls, when `[http] tls_cert` and `tls_key` are configured; plain HTTP otherwise.
//!
//! The provider is `ring`, named explicitly: the dependency tree builds both `ring` and
//! `aws-lc-rs`, and rustls refuses to guess between two.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why TLS could not be set up: every variant is a file the operator configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of the two is set: refused rather than silently serving plain HTTP.
    #[error("[http] needs both tls_cert and tls_key, or neither")]
    Half,
    /// Missing, unreadable or not PEM.
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    /// The key does not match the certificate, or is of a kind rustls does not take.
    #[error("TLS certificate/key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls server config for `[http]`, or `None` for plain HTTP.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => return Err(TlsError::Half),
    };
    let pem_err = |path: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert, &e))?;
    if certs.is_empty() {
        return Err(pem_err(cert, &"no CERTIFICATE block"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(cfg)))
}

/// Serve `app` on `listener` (HTTPS when `tls` is set) until `stop` fires; open connections
/// (event streams) then get 3 s to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let svc = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            axum::serve(listener, svc)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
        }
        Some(cfg) => {
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                let _ = stop.await;
                h.graceful_shutdown(Some(Duration::from_secs(3)));
            });
            let config = axum_server::tls_rustls::RustlsConfig::from_config(cfg);
            axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, config)?
                .handle(handle)
                .serve(svc)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1 made by the openssl CLI (.ci/setup installs it).
    fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
            ])
            .args(["-subj", "/CN=meshlift-test", "-addext", "subjectAltName=IP:127.0.0.1"])
            // A leaf, not a CA: webpki refuses a CA certificate as the server's own.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success());
        (cert, key)
    }

    #[test]
    fn half_a_tls_config_and_unreadable_files_are_refused_not_served_as_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        assert!(server_config(None, None).unwrap().is_none());
        let (cert, key) = self_signed(dir.path());
        assert!(matches!(server_config(Some(&cert), None), Err(TlsError::Half)));
        let err = server_config(Some(&cert), Some(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        // A key given as the certificate: no CERTIFICATE block.
        let err = server_config(Some(&key), Some(&key)).unwrap_err();
        assert!(err.to_string().contains("key.pem"), "{err}");
    }

    #[tokio::test]
    async fn with_a_certificate_the_server_speaks_https_only() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let tls = server_config(Some(&cert), Some(&key)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(serve(listener, app, tls, stop_rx));

        let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
        let client = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
        let body = client
            .get(format!("https://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ok\n");
        assert!(
            reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_err(),
            "no plain HTTP beside TLS"
        );

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
    }
}
