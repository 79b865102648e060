//! ACME Renewal Information (RFC 9773) on the leader: for every ACME certificate of an
//! issuer whose directory offers `renewalInfo`, ask the CA when it wants the certificate
//! renewed, and record the moment chosen in that window (`SetRenewalWindow`) so
//! [`acme_step`](crate::inventory::acme_step) renews then if it comes before the lifetime
//! rule. A CA that shortens the window (a mass revocation) gets its renewals at once; one
//! that never answers leaves the lifetime rule in charge.
//!
//! When to ask next is the CA's `Retry-After`, kept in this leader's memory only (a new
//! leader asks at once), at least a minute apart and at most a day.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use instant_acme::{Account, CertificateIdentifier};
use tokio::task::JoinSet;

use super::acme_duties::{account_for, Accounts};
use crate::api::server::AppState;
use crate::bundle::Keyring;
use crate::inventory::{
    ari_pick, renewal_seed, AcmeIssuer, BundleStatus, Command, Inventory, Managed,
};

/// Certificates asked about at once, and per pass at most.
const IN_FLIGHT: usize = 8;
const PER_PASS: usize = 256;
/// The CA's `Retry-After` is kept within these (an hour after an error).
const MIN_RECHECK: Duration = Duration::from_secs(60);
const MAX_RECHECK: Duration = Duration::from_secs(86_400);
const AFTER_ERROR: Duration = Duration::from_secs(3_600);

/// When this leader next asks about a bundle (by id).
pub(super) type Checks = Arc<std::sync::Mutex<HashMap<[u8; 32], Instant>>>;

/// The shortest wait between two checks: a minute, or less when tests compress the backoffs
/// (`CERTRAFT_TEST_ACME_BACKOFF_SECS`).
fn min_recheck() -> Duration {
    std::env::var("CERTRAFT_TEST_ACME_BACKOFF_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.max(1)).min(MIN_RECHECK))
        .unwrap_or(MIN_RECHECK)
}

/// One pass: asks the CA about every certificate whose check is due.
pub(super) async fn check(
    st: &Arc<AppState>,
    core: &Arc<Keyring>,
    accounts: &Accounts,
    checks: &Checks,
) {
    let work: Vec<(String, Managed, [u8; 32], i64, AcmeIssuer)> = {
        let inv = st.sm.inventory();
        let due_now = Instant::now();
        let checks = checks.lock().expect("ari checks");
        inv.issuance
            .managed
            .iter()
            .filter(|(_, m)| m.is_acme() && m.order.is_none() && !m.on_fallback)
            .filter_map(|(name, m)| {
                let issuer = inv.issuance.acme_issuers.get(&m.issuer)?;
                if !issuer.ari {
                    return None;
                }
                let b = inv
                    .bundles
                    .get(name)
                    .filter(|b| b.status == BundleStatus::Active)?;
                let id = b.id();
                if checks.get(&id).is_some_and(|at| *at > due_now) {
                    return None;
                }
                Some((
                    name.clone(),
                    m.clone(),
                    id,
                    b.meta.not_before,
                    issuer.clone(),
                ))
            })
            .take(PER_PASS)
            .collect()
    };
    let mut running = JoinSet::new();
    for (name, m, id, not_before, issuer) in work {
        while running.len() >= IN_FLIGHT {
            running.join_next().await;
        }
        let (st, core, accounts, checks) =
            (st.clone(), core.clone(), accounts.clone(), checks.clone());
        running.spawn(async move {
            let next = match account_for(&accounts, &issuer, &core).await {
                Ok(account) => ask(&st, &account, &name, &m, (id, not_before)).await,
                Err(e) => {
                    tracing::warn!(cert = %name, error = %e, "renewal information not asked: no account");
                    AFTER_ERROR
                }
            };
            checks
                .lock()
                .expect("ari checks")
                .insert(id, Instant::now() + next);
        });
    }
    while running.join_next().await.is_some() {}
}

/// Asks the CA about bundle `id` of `name`, records the chosen moment when it changed, and
/// says when to ask again.
async fn ask(
    st: &AppState,
    account: &Account,
    name: &str,
    m: &Managed,
    (id, not_before): ([u8; 32], i64),
) -> Duration {
    let Some(cert_id) = identifier_of(st, &st.sm.inventory(), name) else {
        return AFTER_ERROR;
    };
    let (info, retry) = match account.renewal_info(&cert_id).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(cert = %name, error = %e, "the CA's renewal information was not read; the lifetime rule stays in charge");
            return AFTER_ERROR;
        }
    };
    let retry = retry.clamp(min_recheck(), MAX_RECHECK);
    let window = info.suggested_window;
    let (from, to) = (window.start.unix_timestamp(), window.end.unix_timestamp());
    // A window that ended before this certificate existed is not about it (a CA answering
    // for the one it replaced): renewing on it would renew again and again.
    if to < not_before {
        tracing::warn!(cert = %name, window_end = to, not_before, "the CA's renewal window ended before the certificate was issued; ignored");
        return retry;
    }
    let start = ari_pick(from, to, &renewal_seed(name, &id));
    // Due already and still due: nothing to record (a window that moves along with the
    // clock would otherwise be a Raft entry per check).
    let now = crate::clock::unix_now();
    let still_due = m.ari_window_start.is_some_and(|old| old <= now) && start <= now;
    if m.ari_window_start != Some(start) && !still_due {
        let recorded = st
            .propose(
                "certraft-node",
                Command::SetRenewalWindow {
                    name: name.to_string(),
                    id: hex::encode(id),
                    start,
                },
            )
            .await;
        match recorded {
            Ok(_) => tracing::info!(cert = %name, start, "the CA's renewal window recorded"),
            Err(e) => tracing::debug!(cert = %name, error = ?e, "renewal window not recorded"),
        }
    }
    retry
}

/// The RFC 9773 identifier (authority key id and serial) of the bundle `name` serves now,
/// from its leaf; `None` when it has none or the leaf carries no authority key id.
fn identifier_of(
    st: &AppState,
    inv: &Inventory,
    name: &str,
) -> Option<CertificateIdentifier<'static>> {
    let b = inv
        .bundles
        .get(name)
        .filter(|b| b.status == BundleStatus::Active)?;
    let material = match b.sealed.open(&st.keyring) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(cert = %name, error = %e, "the bundle does not open for its renewal information");
            return None;
        }
    };
    certificate_identifier(material.certs().first()?)
}

/// The identifier of a certificate (DER): base64url of its authority key identifier's
/// `keyIdentifier` and of its serial's content octets.
fn certificate_identifier(der: &[u8]) -> Option<CertificateIdentifier<'static>> {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        })?;
    let serial = cert.tbs_certificate.raw_serial();
    Some(CertificateIdentifier::new(aki.into(), serial.into()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9773 §4.1's example: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4
    /// and serial 00:87:65:43:21 give `aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE`.
    #[test]
    fn the_identifier_is_the_rfc_example() {
        use rcgen::{CertificateParams, KeyPair, SerialNumber};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(vec![]).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ]);
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["a.test".into()]).expect("params");
        leaf.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x87, 0x65, 0x43, 0x21]));
        leaf.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("key");
        let cert = leaf.signed_by(&key, &issuer).expect("leaf");
        let id = certificate_identifier(cert.der()).expect("an identifier");
        assert_eq!(id.to_string(), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
        // No authority key id: none.
        let mut bare = CertificateParams::new(vec!["b.test".into()]).expect("params");
        bare.use_authority_key_identifier_extension = false;
        let cert = bare.signed_by(&key, &issuer).expect("leaf");
        assert!(certificate_identifier(cert.der()).is_none());
    }
}
