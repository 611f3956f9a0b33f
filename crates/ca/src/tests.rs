//! The API through `router()`, with openssl as the independent judge of what the CA issues.

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use super::*;

/// A cluster CA in a temporary directory and the router over it.
struct Fixture {
    dir: tempfile::TempDir,
    router: Router,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        dcos_tls::create_ca(&dir.path().join("ca"), "test").unwrap();
        let ca = Ca::load(&dir.path().join("ca")).unwrap();
        Fixture {
            router: router(Arc::new(ca)),
            dir,
        }
    }

    fn ca_crt(&self) -> PathBuf {
        self.dir.path().join("ca").join(dcos_tls::CA_CERT)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs_err::write(&path, text).unwrap();
        path
    }

    async fn call(&self, method: Method, path: &str, body: impl Into<Body>) -> Answer {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(body.into())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        Answer {
            status,
            content_type: headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            nosniff: headers.get(header::X_CONTENT_TYPE_OPTIONS).is_some(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, body.to_string()).await
    }

    /// `openssl verify` of `cert` against the cluster CA.
    fn verify(&self, cert: &str) {
        let path = self.write("leaf.pem", cert);
        let (ok, out) = openssl(&["verify", "-CAfile"], &[&self.ca_crt(), &path]);
        assert!(ok, "openssl verify: {out}");
    }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    nosniff: bool,
    json: Value,
    text: String,
}

impl Answer {
    /// A success in cfssl's envelope; its result.
    fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert_eq!(self.content_type, "application/json");
        assert!(
            self.text.starts_with(r#"{"success":true,"result":"#),
            "{}",
            self.text
        );
        assert!(self.text.ends_with("]}\n"), "{}", self.text);
        assert_eq!(self.json["errors"], json!([]));
        &self.json["result"]
    }

    /// A refusal in cfssl's error shape, with `status` and `code`; its message.
    fn refused(&self, status: StatusCode, code: u32) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type, "text/plain; charset=utf-8");
        assert!(self.nosniff);
        assert!(self.text.ends_with('\n'));
        assert_eq!(self.json["success"], json!(false), "{}", self.text);
        assert_eq!(self.json["result"], Value::Null);
        assert_eq!(self.json["messages"], json!([]));
        assert_eq!(self.json["errors"][0]["code"], json!(code), "{}", self.text);
        self.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Runs openssl with `args` then `paths`; (success, stdout and stderr).
fn openssl(args: &[&str], paths: &[&Path]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .args(paths)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl x509 -text` of a PEM certificate.
fn x509_text(fx: &Fixture, cert: &str) -> String {
    let path = fx.write("show.pem", cert);
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in"], &[&path]);
    assert!(ok, "{text}");
    text
}

/// A CSR made by openssl with a new key: `key_args` pick the key, `extra` adds options.
fn openssl_csr(fx: &Fixture, key_args: &[&str], extra: &[&str]) -> String {
    let out = fx.dir.path().join("req.csr");
    let key = fx.dir.path().join("req.key");
    let mut args = vec!["req", "-new"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&["-nodes", "-subj", "/C=DE/O=Potato, Inc./CN=x"]);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-keyout", key.to_str().unwrap(), "-out"]);
    let (ok, text) = openssl(&args, &[&out]);
    assert!(ok, "{text}");
    fs_err::read_to_string(out).unwrap()
}

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

#[tokio::test]
async fn info_gives_the_ca_certificate_on_both_prefixes() {
    let fx = Fixture::new();
    let ca_pem = fs_err::read_to_string(fx.ca_crt()).unwrap();
    for path in ["/api/v1/cfssl/info", "/ca/api/v2/info"] {
        for body in [
            json!({}),
            json!({"profile": ""}),
            json!({"profile": "nope"}),
        ] {
            let answer = fx.post(path, body).await;
            let result = answer.ok();
            assert_eq!(result["certificate"], json!(ca_pem.trim()));
            assert_eq!(
                result["usages"],
                json!(["signing", "key encipherment", "server auth", "client auth"])
            );
            assert_eq!(result["expiry"], json!("8760h"));
            assert_eq!(answer.json["messages"], json!([]));
        }
    }
}

#[tokio::test]
async fn newkey_gives_a_sec1_key_and_a_csr_that_verifies() {
    let fx = Fixture::new();
    let body = json!({"CN": "svc", "hosts": ["svc.example.com", "10.1.2.3"],
        "names": [{"C": "US", "O": "example"}], "key": {"algo": "ecdsa", "size": 384}});
    let answer = fx.post("/ca/api/v2/newkey", body).await;
    let result = answer.ok().clone();
    // A Go struct: cfssl's field order, not sorted.
    assert!(
        answer
            .text
            .contains(r#""result":{"private_key":"-----BEGIN EC PRIVATE KEY"#),
        "{}",
        answer.text
    );
    assert!(result.get("certificate").is_none());
    let keys: Vec<_> = result.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["certificate_request", "private_key", "sums"]);
    let key = result["private_key"].as_str().unwrap();
    assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{key}");
    let key_path = fx.write("k.pem", key);
    let (ok, text) = openssl(&["ec", "-check", "-noout", "-text", "-in"], &[&key_path]);
    assert!(ok && text.contains("secp384r1"), "{text}");

    let csr = result["certificate_request"].as_str().unwrap();
    let csr_path = fx.write("c.csr", csr);
    let (ok, text) = openssl(&["req", "-verify", "-noout", "-text", "-in"], &[&csr_path]);
    assert!(ok, "{text}");
    assert!(text.contains("DNS:svc.example.com"), "{text}");
    assert!(text.contains("IP Address:10.1.2.3"), "{text}");
    assert!(text.contains("C = US, O = example, CN = svc"), "{text}");
    // The key is the CSR's.
    let (_, key_pub) = openssl(&["ec", "-pubout", "-in"], &[&key_path]);
    let (_, csr_pub) = openssl(&["req", "-pubkey", "-noout", "-in"], &[&csr_path]);
    assert!(csr_pub.contains(key_pub.lines().nth(1).unwrap()));

    let der = pem::parse(csr).unwrap().into_contents();
    let sums = &result["sums"]["certificate_request"];
    assert_eq!(
        sums["sha-1"],
        json!(ca::hex(sha1_smol::Sha1::from(&der).digest().bytes()))
    );
    assert_eq!(sums["md5"].as_str().unwrap().len(), 32);
}

#[tokio::test]
async fn newcert_issues_a_certificate_that_openssl_verifies() {
    let fx = Fixture::new();
    let body = json!({"request": {"CN": "www.example.com",
        "hosts": ["www.example.com", "10.0.0.1", "ops@example.com"],
        "names": [{"C": "US", "ST": "California", "L": "San Francisco", "O": "example.com"}]}});
    let answer = fx.post("/api/v1/cfssl/newcert", body).await;
    let result = answer.ok().clone();
    assert_eq!(answer.json["messages"], json!([]));
    let keys: Vec<_> = result.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["certificate", "certificate_request", "private_key", "sums"]
    );
    let cert = result["certificate"].as_str().unwrap();
    fx.verify(cert);
    let text = x509_text(&fx, cert);
    for want in [
        "DNS:www.example.com",
        "IP Address:10.0.0.1",
        "email:ops@example.com",
        "CA:FALSE",
        "Digital Signature, Key Encipherment",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "C = US, ST = California, L = San Francisco, O = example.com, CN = www.example.com",
        "Issuer: CN = dcos-rs cluster CA test, O = dcos-rs",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    assert!(result["sums"]["certificate"]["md5"].is_string());

    // Without hosts: still issued, with cfssl's warning.
    let answer = fx
        .post(
            "/ca/api/v2/newcert",
            json!({"request": {"CN": "bare"}, "bundle": true}),
        )
        .await;
    let cert = answer.ok()["certificate"].as_str().unwrap().to_string();
    fx.verify(&cert);
    assert_eq!(answer.json["messages"][0]["code"], json!(5300));
    assert_eq!(
        answer.json["messages"][0]["message"],
        json!(NO_HOSTS_MESSAGE)
    );
    assert_eq!(
        answer.json["messages"][1]["message"],
        json!(NO_BUNDLER_MESSAGE)
    );
}

#[tokio::test]
async fn sign_issues_for_an_openssl_csr_with_hosts_replacing_its_sans() {
    let fx = Fixture::new();
    let csr = openssl_csr(
        &fx,
        P256,
        &["-addext", "subjectAltName=DNS:csr.example.com"],
    );

    // No hosts: the CSR's SANs (the EE CAClient relies on this).
    let answer = fx
        .post(
            "/ca/api/v2/sign",
            json!({"certificate_request": csr, "profile": "", "crl_override": "", "label": ""}),
        )
        .await;
    let result = answer.ok().clone();
    assert_eq!(result.as_object().unwrap().len(), 1, "only the certificate");
    let cert = result["certificate"].as_str().unwrap();
    fx.verify(cert);
    let text = x509_text(&fx, cert);
    assert!(text.contains("DNS:csr.example.com"), "{text}");
    assert!(
        text.contains("C = DE, O = \"Potato, Inc.\", CN = x"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");

    // hosts replace them; hostname wins over hosts; subject overrides field by field.
    let answer = fx
        .post(
            "/api/v1/cfssl/sign",
            json!({"certificate_request": csr, "hosts": ["a.example.com", "192.168.0.9"],
                "subject": {"CN": "renamed"}}),
        )
        .await;
    let text = x509_text(&fx, answer.ok()["certificate"].as_str().unwrap());
    assert!(
        text.contains("DNS:a.example.com, IP Address:192.168.0.9"),
        "{text}"
    );
    assert!(!text.contains("csr.example.com"), "{text}");
    assert!(
        text.contains("C = DE, O = \"Potato, Inc.\", CN = renamed"),
        "{text}"
    );
    let answer = fx
        .post(
            "/api/v1/cfssl/sign",
            json!({"certificate_request": csr, "hosts": ["a.example.com"], "hostname": "b.x,c.x"}),
        )
        .await;
    let text = x509_text(&fx, answer.ok()["certificate"].as_str().unwrap());
    assert!(text.contains("DNS:b.x, DNS:c.x"), "{text}");
}

#[tokio::test]
async fn sign_takes_an_rsa_csr_as_the_ee_test_does() {
    let fx = Fixture::new();
    let csr = openssl_csr(&fx, &["-newkey", "rsa:2048"], &[]);
    let answer = fx
        .post("/ca/api/v2/sign", json!({"certificate_request": csr}))
        .await;
    let cert = answer.ok()["certificate"].as_str().unwrap().to_string();
    fx.verify(&cert);
    assert!(x509_text(&fx, &cert).contains("rsaEncryption"));
}

#[tokio::test]
async fn a_csr_asking_for_a_ca_is_refused() {
    let fx = Fixture::new();
    let csr = openssl_csr(&fx, P256, &["-addext", "basicConstraints=critical,CA:TRUE"]);
    let answer = fx
        .post("/ca/api/v2/sign", json!({"certificate_request": csr}))
        .await;
    let message = answer.refused(StatusCode::BAD_REQUEST, 5300);
    assert_eq!(message, "Policy violation request");
}

#[tokio::test]
async fn usages_come_from_the_profile_not_the_csr() {
    let fx = Fixture::new();
    let csr = openssl_csr(
        &fx,
        P256,
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    );
    let answer = fx
        .post("/ca/api/v2/sign", json!({"certificate_request": csr}))
        .await;
    let text = x509_text(&fx, answer.ok()["certificate"].as_str().unwrap());
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
}

#[tokio::test]
async fn bad_csrs_are_refused_with_cfssl_codes() {
    let fx = Fixture::new();
    let csr = openssl_csr(&fx, P256, &[]);
    let block = pem::parse(&csr).unwrap();
    let mut der = block.contents().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = ca::pem_encode("CERTIFICATE REQUEST", der);
    let garbage = ca::pem_encode("CERTIFICATE REQUEST", b"not der at all".to_vec());
    let wrong_type = ca::pem_encode("CERTIFICATE", block.contents().to_vec());
    for (csr, status, code) in [
        (tampered.as_str(), StatusCode::BAD_REQUEST, 9300),
        (garbage.as_str(), StatusCode::BAD_REQUEST, 9003),
        (wrong_type.as_str(), StatusCode::BAD_REQUEST, 9300),
        ("hello", StatusCode::BAD_REQUEST, 9002),
        ("", StatusCode::BAD_REQUEST, 400),
    ] {
        let answer = fx
            .post("/ca/api/v2/sign", json!({"certificate_request": csr}))
            .await;
        answer.refused(status, code);
    }
    let answer = fx.post("/ca/api/v2/sign", json!({})).await;
    assert_eq!(
        answer.refused(StatusCode::BAD_REQUEST, 400),
        "missing parameter 'certificate_request'"
    );
}

#[tokio::test]
async fn bad_requests_get_cfssl_errors() {
    let fx = Fixture::new();
    for ep in ["info", "newkey", "newcert", "sign"] {
        let path = format!("/ca/api/v2/{ep}");
        let answer = fx.call(Method::POST, &path, "{not json").await;
        let message = answer.refused(StatusCode::BAD_REQUEST, 400);
        if ep == "sign" {
            assert_eq!(message, "Unable to parse sign request");
        }
        let answer = fx.call(Method::GET, &path, Body::empty()).await;
        assert_eq!(
            answer.refused(StatusCode::METHOD_NOT_ALLOWED, 405),
            "Method is not allowed:\"GET\""
        );
        let big = format!(r#"{{"label": "{}"}}"#, "x".repeat(BODY_LIMIT));
        let answer = fx.call(Method::POST, &path, big).await;
        answer.refused(StatusCode::PAYLOAD_TOO_LARGE, 413);
    }
    let answer = fx.post("/ca/api/v2/newcert", json!({"profile": ""})).await;
    assert_eq!(
        answer.refused(StatusCode::BAD_REQUEST, 400),
        "missing request section"
    );
    let answer = fx
        .post(
            "/ca/api/v2/newkey",
            json!({"CN": "x", "ca": {"expiry": "1h"}}),
        )
        .await;
    assert_eq!(
        answer.refused(StatusCode::BAD_REQUEST, 400),
        "ca section only permitted in initca"
    );
    let answer = fx
        .post(
            "/ca/api/v2/newkey",
            json!({"CN": "x", "key": {"algo": "rsa", "size": 1024}}),
        )
        .await;
    assert_eq!(
        answer.refused(StatusCode::BAD_REQUEST, 2400),
        "RSA key is too weak"
    );
    let answer = fx
        .post(
            "/ca/api/v2/newcert",
            json!({"request": {"key": {"algo": "rsa", "size": 2048}}}),
        )
        .await;
    answer.refused(StatusCode::BAD_REQUEST, 2400);
    let answer = fx.call(Method::POST, "/", Body::empty()).await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (StatusCode::NOT_FOUND, "404 page not found\n")
    );
}

#[tokio::test]
async fn the_ca_certificate_file_is_served_unauthenticated() {
    let fx = Fixture::new();
    let answer = fx.call(Method::GET, "/ca/dcos-ca.crt", Body::empty()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, CA_CERT_TYPE);
    assert_eq!(answer.text, fs_err::read_to_string(fx.ca_crt()).unwrap());
}

#[test]
fn a_ca_certificate_of_another_key_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    dcos_tls::create_ca(&dir.path().join("a"), "a").unwrap();
    dcos_tls::create_ca(&dir.path().join("b"), "b").unwrap();
    fs_err::copy(
        dir.path().join("b").join(dcos_tls::CA_CERT),
        dir.path().join("a").join(dcos_tls::CA_CERT),
    )
    .unwrap();
    let e = Ca::load(&dir.path().join("a")).unwrap_err();
    assert!(matches!(e, ca::LoadError::KeyMismatch), "{e}");
    assert!(Ca::load(&dir.path().join("none")).is_err());
    assert!(!format!("{:?}", Ca::load(&dir.path().join("b")).unwrap()).contains("PRIVATE"));
}

#[tokio::test]
async fn serves_until_shutdown_and_names_a_missing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ca_dir: dir.path().join("missing"),
    };
    let e = serve(config, CancellationToken::new()).await.unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");

    dcos_tls::create_ca(&dir.path().join("ca"), "t").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let ca = Arc::new(Ca::load(&dir.path().join("ca")).unwrap());
    let server = tokio::spawn(serve_on(listener, ca, shutdown.clone()));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream
        .write_all(
            b"POST /ca/api/v2/info HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("BEGIN CERTIFICATE"), "{answer}");
    shutdown.cancel();
    server.await.unwrap();
}

mod csr_parser {
    use super::*;
    use proptest::prelude::*;

    fn ca() -> (tempfile::TempDir, Ca) {
        let dir = tempfile::tempdir().unwrap();
        dcos_tls::create_ca(dir.path(), "fuzz").unwrap();
        let ca = Ca::load(dir.path()).unwrap();
        (dir, ca)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a client puts in the PEM block, the answer is a refusal, never a panic.
        #[test]
        fn random_der_is_refused(der in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (_dir, ca) = ca();
            let pem = ca::pem_encode("CERTIFICATE REQUEST", der);
            prop_assert!(ca.sign(&pem, ca::SignOptions::default()).is_err());
        }

        /// A real CSR cut short or with one byte changed is refused, never signed.
        #[test]
        fn damaged_csrs_are_refused(cut in 0usize..200, flip in 0usize..200, bit in 0u8..8) {
            let (_dir, ca) = ca();
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, "a");
            let der = params.serialize_request(&key).unwrap().der().to_vec();
            let short = der[..cut.min(der.len() - 1)].to_vec();
            prop_assert!(ca.sign(&ca::pem_encode("CERTIFICATE REQUEST", short), Default::default()).is_err());
            let mut flipped = der.clone();
            let at = flip % der.len();
            flipped[at] ^= 1 << bit;
            let pem = ca::pem_encode("CERTIFICATE REQUEST", flipped);
            if let Ok(cert) = ca.sign(&pem, Default::default()) {
                // x509-parser tolerates some damage outside the signed part (the outer
                // SEQUENCE's tag); then what is issued must be exactly what was signed.
                let (_, cert) = x509_parser::parse_x509_certificate(&cert).unwrap();
                prop_assert_eq!(
                    cert.public_key().subject_public_key.data.as_ref(),
                    key.public_key_raw(),
                    "byte {} bit {}", at, bit
                );
                let cn: Vec<_> = cert.subject().iter_common_name().map(|a| a.as_str().unwrap()).collect();
                prop_assert_eq!(cn, vec!["a"]);
            }
        }
    }
}

/// A CSR signed with SHA-1 or for an RSA key under 2048 bits is refused.
#[test]
fn weak_csrs_are_refused() {
    for args in [
        &["-newkey", "rsa:1024", "-sha256"][..],
        &["-newkey", "rsa:2048", "-sha1"][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (key, csr) = (dir.path().join("k.pem"), dir.path().join("r.csr"));
        let out = std::process::Command::new("openssl")
            .args(["req", "-new", "-nodes", "-subj", "/CN=weak"])
            .args(args)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "{out:?}");
        dcos_tls::create_ca(&dir.path().join("ca"), "weak").unwrap();
        let ca = Ca::load(&dir.path().join("ca")).unwrap();
        let pem = std::fs::read_to_string(&csr).unwrap();
        assert!(ca.sign(&pem, Default::default()).is_err(), "{args:?}");
    }
}
