//! The signing core, without HTTP: keys and CSRs made for a request, CSRs checked and signed
//! by the cluster CA under cfssl's default profile. Every refusal is a [`Failure`] carrying
//! the cfssl code the real service answers with.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, SignatureAlgorithm,
};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::X509Name;

use crate::api::{Failure, KeyRequest, Name};

/// cfssl's default profile (no DC/OS ca-config is public): its usages as `info` names them.
pub const USAGES: &[&str] = &["signing", "key encipherment", "server auth", "client auth"];
/// The default profile's expiry as cfssl writes it.
pub const EXPIRY: &str = "8760h";
const EXPIRY_TIME: Duration = Duration::from_secs(8760 * 3600);
/// cfssl backdates every certificate so that clocks a little behind still accept it.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why the CA cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The issuer cannot be rebuilt from `ca.key` and `ca.name`.
    #[error("cannot rebuild the issuer")]
    Issuer(#[source] dcos_tls::Error),
    /// `ca.crt` cannot be read.
    #[error("cannot read the CA certificate")]
    Read(#[source] std::io::Error),
    /// `ca.crt` is not a PEM certificate.
    #[error("the CA certificate is not a PEM certificate")]
    Parse,
    /// `ca.crt` is not the certificate of `ca.key`: nothing signed would chain to it.
    #[error("the CA certificate does not match the CA key")]
    KeyMismatch,
}

/// The cluster CA, loaded once at start. The key never leaves this struct.
pub struct Ca {
    cert_pem: String,
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A key and its CSR, as `newkey` answers them.
pub struct NewKey {
    /// The private key, PEM (`EC PRIVATE KEY`, SEC1, as cfssl writes it).
    pub key_pem: String,
    /// The CSR, DER.
    pub csr_der: Vec<u8>,
}

/// What a `sign` request asks beyond the CSR.
#[derive(Default)]
pub struct SignOptions {
    /// SANs replacing the CSR's, when given (even empty).
    pub hosts: Option<Vec<String>>,
    /// Subject fields replacing the CSR's one by one.
    pub subject: Option<crate::api::Subject>,
}

// === impl Ca ===

impl Ca {
    /// Loads the CA in `ca_dir` (`ca.crt`, `ca.key`, `ca.name` as `dcos_tls::create_ca` makes).
    pub fn load(ca_dir: &Path) -> Result<Ca, LoadError> {
        let (issuer, key) = dcos_tls::issuer(ca_dir).map_err(LoadError::Issuer)?;
        let cert_pem =
            fs_err::read_to_string(ca_dir.join(dcos_tls::CA_CERT)).map_err(LoadError::Read)?;
        let der = pem::parse(&cert_pem).map_err(|_| LoadError::Parse)?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.contents()).map_err(|_| LoadError::Parse)?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(LoadError::KeyMismatch);
        }
        Ok(Ca {
            cert_pem,
            issuer,
            key,
        })
    }

    /// The CA certificate as `ca.crt` holds it.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A new key and a CSR for it, as cfssl's generator makes them.
    pub fn new_key(&self, req: &crate::api::CertificateRequest) -> Result<NewKey, Failure> {
        let (alg, curve) = key_algorithm(req.key.as_ref())?;
        let key = KeyPair::generate_for(alg)
            .map_err(|e| Failure::cfssl(2400, format!("key generation failed: {e}")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject_of_request(req);
        params.subject_alt_names = sans(req.hosts.iter().flatten())?;
        let csr = params
            .serialize_request(&key)
            .map_err(|e| Failure::internal(format!("CSR not made: {e}")))?;
        Ok(NewKey {
            key_pem: sec1_pem(&key, curve)?,
            csr_der: csr.der().to_vec(),
        })
    }

    /// Checks the PEM CSR `csr` and issues its certificate (DER) under the default profile.
    pub fn sign(&self, csr: &str, options: SignOptions) -> Result<Vec<u8>, Failure> {
        let block = pem::parse(csr).map_err(|_| Failure::cfssl(9002, "CSR Decode failed"))?;
        if !matches!(
            block.tag(),
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
        ) {
            return Err(Failure::cfssl(9300, "not a csr"));
        }
        let (rest, req) = X509CertificationRequest::from_der(block.contents())
            .map_err(|e| Failure::cfssl(9003, format!("x509: {e}")))?;
        if !rest.is_empty() {
            return Err(Failure::cfssl(9003, "x509: trailing data"));
        }
        let info = &req.certification_request_info;
        // A CSR signed by another key than the one it names proves nothing about its holder.
        if req.verify_signature().is_err() {
            return Err(Failure::cfssl(
                9300,
                "x509: CSR signature verification failure",
            ));
        }
        weak_key(&req)?;
        let public = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
            .map_err(|_| Failure::cfssl(9003, "x509: unsupported public key algorithm in CSR"))?;

        let mut csr_sans = Vec::new();
        for ext in req.requested_extensions().into_iter().flatten() {
            match ext {
                // The default profile is not a CA profile: cfssl refuses, never downgrades.
                ParsedExtension::BasicConstraints(bc) if bc.ca => {
                    return Err(Failure::cfssl(5300, "Policy violation request"));
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(n) => csr_sans.push(n.to_string()),
                            GeneralName::RFC822Name(n) => csr_sans.push(n.to_string()),
                            GeneralName::IPAddress(b) => {
                                if let Some(ip) = ip_from_bytes(b) {
                                    csr_sans.push(ip.to_string());
                                }
                            }
                            // cfssl (2018) copies DNS names, IPs and emails only.
                            _ => {}
                        }
                    }
                }
                // Key usages and the rest come from the profile, as in cfssl.
                _ => {}
            }
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = subject_of_csr(&info.subject, options.subject.as_ref());
        params.subject_alt_names = match &options.hosts {
            Some(hosts) => sans(hosts.iter())?,
            None => sans(csr_sans.iter())?,
        };
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        let (not_before, not_after) = validity(OffsetDateTime::now_utc());
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .signed_by(&public, &self.issuer, &self.key)
            .map_err(|e| Failure::internal(format!("certificate not signed: {e}")))?;
        tracing::info!(
            subject = %info.subject,
            serial = %hex(serial_of(&cert)),
            "issued a certificate"
        );
        Ok(cert.der().to_vec())
    }
}

fn serial_of(cert: &rcgen::Certificate) -> Vec<u8> {
    cert.params()
        .serial_number
        .as_ref()
        .map(SerialNumber::to_bytes)
        .unwrap_or_default()
}

/// notBefore is now rounded to the minute, backdated; notAfter a profile expiry later.
fn validity(now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    let seconds = now.unix_timestamp();
    let rounded = (seconds + 30).div_euclid(60) * 60;
    let rounded = OffsetDateTime::from_unix_timestamp(rounded).unwrap_or(now);
    let not_before = rounded - BACKDATE;
    (not_before, not_before + EXPIRY_TIME)
}

/// 20 random bytes as cfssl draws them, the top bit cleared so the DER integer stays within
/// RFC 5280's 20 octets (cfssl lets it grow to 21).
fn random_serial() -> Result<SerialNumber, Failure> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 20];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Failure::internal("no randomness for a serial number"))?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Uppercase hex, as cfssl writes digests.
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The signature algorithm and curve OID for a key request; cfssl's checks and messages.
/// ring generates ECDSA P-256 and P-384 only: P-521 and RSA keys cannot be made here.
fn key_algorithm(
    key: Option<&KeyRequest>,
) -> Result<(&'static SignatureAlgorithm, &'static [u64]), Failure> {
    const P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
    const P384: &[u64] = &[1, 3, 132, 0, 34];
    let algo = key.and_then(|k| k.algo.as_deref()).unwrap_or("ecdsa");
    let size = key.and_then(|k| k.size);
    match algo {
        "ecdsa" => match size.unwrap_or(256) {
            256 => Ok((&rcgen::PKCS_ECDSA_P256_SHA256, P256)),
            384 => Ok((&rcgen::PKCS_ECDSA_P384_SHA384, P384)),
            521 => Err(Failure::cfssl(
                2400,
                "ecdsa P-521 keys cannot be generated by this CA; use 256 or 384",
            )),
            _ => Err(Failure::cfssl(2400, "invalid curve")),
        },
        "rsa" => match size.unwrap_or(0) {
            s if s < 2048 => Err(Failure::cfssl(2400, "RSA key is too weak")),
            s if s > 8192 => Err(Failure::cfssl(2400, "RSA key size too large")),
            _ => Err(Failure::cfssl(
                2400,
                "RSA keys cannot be generated by this CA; use ecdsa, or sign a CSR made elsewhere",
            )),
        },
        _ => Err(Failure::cfssl(2400, "invalid algorithm")),
    }
}

/// The key as cfssl writes an ECDSA key: SEC1 `EC PRIVATE KEY` with its curve named.
/// ring holds it as PKCS#8, whose inner ECPrivateKey leaves the curve to the outer wrapper.
fn sec1_pem(key: &KeyPair, curve: &[u64]) -> Result<String, Failure> {
    let bad = |_| Failure::internal("generated key has an unexpected encoding");
    let pkcs8 = key.serialize_der();
    let inner = yasna::parse_der(&pkcs8, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            r.next().read_sequence(|r| {
                r.next().read_oid()?;
                r.next().read_oid()
            })?;
            let inner = r.next().read_bytes()?;
            // A v2 PKCS#8 may carry the public key after; it is in the key pair anyway.
            r.read_optional(|r| r.read_der())?;
            Ok(inner)
        })
    })
    .map_err(bad)?;
    let secret = yasna::parse_der(&inner, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            let secret = r.next().read_bytes()?;
            r.read_optional(|r| r.read_der())?;
            r.read_optional(|r| r.read_der())?;
            Ok(secret)
        })
    })
    .map_err(bad)?;
    let public = key.public_key_raw();
    let oid = yasna::models::ObjectIdentifier::from_slice(curve);
    let sec1 = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(1);
            w.next().write_bytes(&secret);
            w.next()
                .write_tagged(yasna::Tag::context(0), |w| w.write_oid(&oid));
            w.next().write_tagged(yasna::Tag::context(1), |w| {
                w.write_bitvec_bytes(public, public.len() * 8)
            });
        })
    });
    Ok(pem_encode("EC PRIVATE KEY", sec1))
}

/// PEM as Go writes it: LF line ends, 64 columns.
pub fn pem_encode(tag: &str, der: Vec<u8>) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Refuses what no certificate of this CA may carry: a CSR signed with SHA-1, or an RSA key
/// under 2048 bits (x509-parser verifies both for legacy's sake).
fn weak_key(req: &X509CertificationRequest<'_>) -> Result<(), Failure> {
    use x509_parser::public_key::PublicKey;
    // sha1WithRSAEncryption, ecdsa-with-SHA1, and OIW's sha1WithRSA.
    let sha1 = ["1.2.840.113549.1.1.5", "1.2.840.10045.4.1", "1.3.14.3.2.29"];
    if sha1.contains(&req.signature_algorithm.algorithm.to_id_string().as_str()) {
        return Err(Failure::cfssl(
            9300,
            "x509: CSR signed with SHA-1 is refused",
        ));
    }
    let spki = &req.certification_request_info.subject_pki;
    if let Ok(PublicKey::RSA(rsa)) = spki.parsed() {
        if rsa.key_size() < 2048 {
            return Err(Failure::cfssl(2400, "RSA keys must be at least 2048 bits"));
        }
    }
    Ok(())
}

/// A SAN for each host, by cfssl's rule: an IP address, else an email address, else a DNS
/// name; blank hosts are left out (RFC 5280 has no empty names).
fn sans<'a>(hosts: impl Iterator<Item = &'a String>) -> Result<Vec<SanType>, Failure> {
    hosts
        .filter(|host| !host.trim().is_empty())
        .map(|host| {
            let bad = |_| Failure::bad_request(format!("host {host:?} is not an ASCII name"));
            if let Ok(ip) = IpAddr::from_str(host) {
                return Ok(SanType::IpAddress(ip));
            }
            if let Some(email) = email(host) {
                return Ok(SanType::Rfc822Name(
                    email.to_string().try_into().map_err(bad)?,
                ));
            }
            Ok(SanType::DnsName(host.clone().try_into().map_err(bad)?))
        })
        .collect()
}

/// The address in `host` when Go's mail.ParseAddress would take it: `a@b` or
/// `Name <a@b>`.
fn email(host: &str) -> Option<&str> {
    let addr = match (host.find('<'), host.rfind('>')) {
        (Some(open), Some(close)) if open < close && close == host.len() - 1 => {
            &host[open + 1..close]
        }
        _ => host,
    };
    let (local, domain) = addr.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !addr.chars().any(char::is_whitespace);
    ok.then_some(addr)
}

/// The subject attributes cfssl writes, in Go's order (C, ST, L, O, OU, CN, serialNumber).
/// rcgen keeps one value per attribute type, so the first of several wins.
#[derive(Default)]
struct SubjectFields {
    c: Option<String>,
    st: Option<String>,
    l: Option<String>,
    o: Option<String>,
    ou: Option<String>,
    cn: Option<String>,
    serial: Option<String>,
}

impl SubjectFields {
    fn from_names(cn: Option<&str>, names: &[Name], serial: Option<&str>) -> SubjectFields {
        let first = |f: fn(&Name) -> Option<&str>| {
            names
                .iter()
                .filter_map(f)
                .find(|v| !v.is_empty())
                .map(str::to_string)
        };
        let nonempty = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_string);
        SubjectFields {
            c: first(|n| n.c.as_deref()),
            st: first(|n| n.st.as_deref()),
            l: first(|n| n.l.as_deref()),
            o: first(|n| n.o.as_deref()),
            ou: first(|n| n.ou.as_deref()),
            cn: nonempty(cn),
            serial: nonempty(serial).or_else(|| first(|n| n.serial_number.as_deref())),
        }
    }

    fn from_x509(name: &X509Name<'_>) -> SubjectFields {
        let first =
            |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
                it.filter_map(|a| a.as_str().ok())
                    .find(|v| !v.is_empty())
                    .map(str::to_string)
            };
        let serial_oid = x509_parser::oid_registry::OID_X509_SERIALNUMBER;
        SubjectFields {
            c: first(&mut name.iter_country()),
            st: first(&mut name.iter_state_or_province()),
            l: first(&mut name.iter_locality()),
            o: first(&mut name.iter_organization()),
            ou: first(&mut name.iter_organizational_unit()),
            cn: first(&mut name.iter_common_name()),
            serial: first(&mut name.iter_by_oid(&serial_oid)),
        }
    }

    /// These fields, each replaced by `over`'s when that one is set.
    fn overridden_by(self, over: SubjectFields) -> SubjectFields {
        SubjectFields {
            c: over.c.or(self.c),
            st: over.st.or(self.st),
            l: over.l.or(self.l),
            o: over.o.or(self.o),
            ou: over.ou.or(self.ou),
            cn: over.cn.or(self.cn),
            serial: over.serial.or(self.serial),
        }
    }

    fn into_dn(self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        let fields = [
            (DnType::CountryName, self.c),
            (DnType::StateOrProvinceName, self.st),
            (DnType::LocalityName, self.l),
            (DnType::OrganizationName, self.o),
            (DnType::OrganizationalUnitName, self.ou),
            (DnType::CommonName, self.cn),
            (DnType::CustomDnType(vec![2, 5, 4, 5]), self.serial),
        ];
        for (ty, value) in fields {
            if let Some(value) = value {
                dn.push(ty, dn_value(value));
            }
        }
        dn
    }
}

/// Go writes PrintableString where the text allows it, UTF8String otherwise.
fn dn_value(text: String) -> DnValue {
    match rcgen::PrintableString::try_from(text.as_str()) {
        Ok(p) => DnValue::PrintableString(p),
        Err(_) => DnValue::Utf8String(text),
    }
}

fn subject_of_request(req: &crate::api::CertificateRequest) -> DistinguishedName {
    SubjectFields::from_names(
        req.cn.as_deref(),
        req.names.as_deref().unwrap_or_default(),
        req.serial_number.as_deref(),
    )
    .into_dn()
}

fn subject_of_csr(name: &X509Name<'_>, over: Option<&crate::api::Subject>) -> DistinguishedName {
    let fields = SubjectFields::from_x509(name);
    let fields = match over {
        Some(s) => fields.overridden_by(SubjectFields::from_names(
            s.cn.as_deref(),
            s.names.as_deref().unwrap_or_default(),
            s.serial_number.as_deref(),
        )),
        None => fields,
    };
    fields.into_dn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_rounds_to_the_minute_and_backdates_five_minutes() {
        // A minute boundary: Go's Round goes up from the half minute, down before it.
        let minute = 60 * 16_666_667;
        let at = |s| validity(OffsetDateTime::from_unix_timestamp(s).unwrap());
        let (nb, na) = at(minute + 31);
        assert_eq!(nb.unix_timestamp(), minute + 60 - 300);
        assert_eq!((na - nb).whole_hours(), 8760);
        assert_eq!(at(minute + 29).0.unix_timestamp(), minute - 300);
    }

    #[test]
    fn hosts_become_ip_email_or_dns_sans_as_cfssl_decides() {
        let hosts: Vec<String> = ["10.0.0.1", "::1", "ops@example.com", "a.example.com", "*.x"]
            .map(String::from)
            .to_vec();
        let sans = sans(hosts.iter()).unwrap();
        assert!(matches!(sans[0], SanType::IpAddress(_)));
        assert!(matches!(sans[1], SanType::IpAddress(_)));
        assert!(matches!(sans[2], SanType::Rfc822Name(_)));
        assert!(matches!(sans[3], SanType::DnsName(_)));
        assert!(matches!(sans[4], SanType::DnsName(_)));
        assert_eq!(email("Ops <ops@example.com>"), Some("ops@example.com"));
        assert_eq!(email("example.com"), None);
    }

    #[test]
    fn unsupported_keys_are_cfssl_generation_errors() {
        let req = |algo: &str, size| KeyRequest {
            algo: Some(algo.into()),
            size: Some(size),
        };
        for (algo, size, message) in [
            ("rsa", 1024, "RSA key is too weak"),
            ("rsa", 16384, "RSA key size too large"),
            ("ecdsa", 255, "invalid curve"),
            ("dsa", 2048, "invalid algorithm"),
        ] {
            let e = key_algorithm(Some(&req(algo, size))).err().unwrap();
            assert_eq!((e.code, e.message.as_str()), (2400, message));
        }
        assert!(key_algorithm(Some(&req("rsa", 2048))).is_err());
        assert!(key_algorithm(Some(&req("ecdsa", 384))).is_ok());
        assert!(key_algorithm(None).is_ok());
    }
}
