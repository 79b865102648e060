//! Routes for ACME (issue 15): add, list, show and remove ACME issuers (the account is
//! registered here, on the leader, once); `cert issue --issuer NAME` records a certificate
//! for the leader's ACME duty to obtain; `GET /acme/{name}` tells where it stands.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use base64::Engine;
use zeroize::Zeroizing;

use super::dto::*;
use super::error::AppError;
use super::server::*;
use crate::bundle::assemble::fmt_time;
use crate::clock::unix_now as now;
use crate::inventory::{
    acme_step, AcmeIssuer, AcmeStep, BundleStatus, ChallengeKind, Command, Inventory, Managed,
    DEFAULT_RENEW_AT_PERMILLE, LOCAL_ISSUER,
};
use crate::issuing::acme::{self, AcmeError, Eab, Transport};

/// The largest `--ca-file` accepted (a few roots).
const MAX_CA_PEM: usize = 64 * 1024;

fn invalid(message: String, hint: &str) -> AppError {
    AppError::BadRequest {
        code: "invalid_input",
        message,
        hint: Some(hint.into()),
    }
}

fn acme_failed(e: AcmeError, directory: &str) -> AppError {
    AppError::Upstream {
        code: "acme_failed",
        message: format!("registering with {directory} failed: {e}"),
        hint: Some("check --directory (the CA's directory URL), --ca-file if the CA uses a private root, and --eab-kid/--eab-hmac-file if the CA needs an external account".into()),
    }
}

pub(super) async fn add_issuer(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<AcmeIssuerRequest>,
) -> Result<Json<AcmeIssuerInfo>, AppError> {
    if !crate::inventory::valid_name(&body.name) || body.name == LOCAL_ISSUER {
        return Err(invalid(
            format!("{:?} cannot name an issuer", body.name),
            "use 1–64 letters, digits, '.', '-' or '_', and not `local`",
        ));
    }
    let url = reqwest::Url::parse(&body.directory)
        .ok()
        .filter(|u| u.scheme() == "https" && u.host().is_some() && body.directory.len() <= 2048);
    if url.is_none() {
        return Err(invalid(
            format!("the directory {:?} is not an https URL", body.directory),
            "pass the CA's ACME directory, e.g. --directory https://acme-v02.api.letsencrypt.org/directory",
        ));
    }
    let email = body.email.trim();
    let email_ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') || d == "localhost")
        && !email
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == ',' || c == '<' || c == '>');
    if !email_ok {
        return Err(invalid(
            format!("{email:?} is not an email address"),
            "pass --email with the address the CA sends expiry and policy mail to",
        ));
    }
    if body.ca_pem.as_ref().is_some_and(|p| p.len() > MAX_CA_PEM) {
        return Err(AppError::TooLarge(format!(
            "the --ca-file is over {} KiB; give only the CA's root",
            MAX_CA_PEM / 1024
        )));
    }
    let eab = match (&body.eab_kid, &body.eab_hmac) {
        (None, None) => None,
        (Some(kid), Some(hmac)) => {
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(hmac.trim().trim_end_matches('='))
                .ok()
                .filter(|k| (16..=512).contains(&k.len()));
            let Some(key) = key else {
                return Err(invalid(
                    "the EAB HMAC key is not a base64url key of 16–512 bytes".into(),
                    "put the HMAC key exactly as the CA gave it in the --eab-hmac-file",
                ));
            };
            if kid.is_empty() || kid.len() > 256 || kid.chars().any(char::is_control) {
                return Err(invalid(
                    "the --eab-kid is empty, over 256 characters or has control characters".into(),
                    "pass the key id exactly as the CA gave it",
                ));
            }
            Some(Eab {
                kid: kid.clone(),
                hmac: Zeroizing::new(key),
            })
        }
        _ => {
            return Err(invalid(
                "--eab-kid and --eab-hmac-file go together".into(),
                "pass both (the CA gives them as a pair), or neither",
            ))
        }
    };
    if st
        .sm
        .inventory()
        .issuance
        .acme_issuers
        .contains_key(&body.name)
    {
        return Err(crate::inventory::Refusal::IssuerNameTaken {
            name: body.name.clone(),
        }
        .into());
    }
    let core = st
        .core
        .clone()
        .ok_or_else(|| AppError::from(crate::issuing::IssuingError::NoCoreKey))?;
    let transport = Transport::new(body.ca_pem.as_deref())?;
    let dir = acme::directory(&transport, &body.directory)
        .await
        .map_err(|e| acme_failed(e, &body.directory))?;
    let (account_url, creds) = acme::register(transport, &body.directory, email, eab.as_ref())
        .await
        .map_err(|e| acme_failed(e, &body.directory))?;
    let created_at = now();
    let issuer = AcmeIssuer {
        name: body.name.clone(),
        directory: body.directory.clone(),
        email: email.to_string(),
        account_url,
        sealed_credentials: core.seal(
            AcmeIssuer::credentials_record(&body.name, created_at).as_bytes(),
            &creds,
        ),
        ca_pem: body.ca_pem.clone(),
        ari: dir.ari,
        created_at,
        created_by: actor.0.clone(),
    };
    st.propose(
        &actor.0,
        Command::AddAcmeIssuer {
            issuer: issuer.clone(),
        },
    )
    .await?;
    Ok(Json(issuer_info(&st.sm.inventory(), &issuer)))
}

fn issuer_info(inv: &Inventory, i: &AcmeIssuer) -> AcmeIssuerInfo {
    AcmeIssuerInfo {
        name: i.name.clone(),
        directory: i.directory.clone(),
        email: i.email.clone(),
        account_url: i.account_url.clone(),
        ari: i.ari,
        created_at: fmt_time(i.created_at),
        managed: inv
            .issuance
            .managed
            .values()
            .filter(|m| m.issuer == i.name)
            .count(),
    }
}

pub(super) async fn list_issuers(State(st): State<S>) -> Result<Json<IssuerList>, AppError> {
    let inv = st.read_barrier().await?;
    Ok(Json(IssuerList {
        local: inv
            .issuance
            .local_issuer
            .as_ref()
            .map(|l| l.subject.clone()),
        acme: inv
            .issuance
            .acme_issuers
            .values()
            .map(|i| issuer_info(&inv, i))
            .collect(),
    }))
}

fn no_issuer(name: &str) -> AppError {
    crate::inventory::Refusal::IssuerNotFound {
        name: name.to_string(),
    }
    .into()
}

pub(super) async fn show_issuer(
    State(st): State<S>,
    Path(name): Path<String>,
) -> Result<Json<AcmeIssuerInfo>, AppError> {
    let inv = st.read_barrier().await?;
    let i = inv
        .issuance
        .acme_issuers
        .get(&name)
        .ok_or_else(|| no_issuer(&name))?;
    Ok(Json(issuer_info(&inv, i)))
}

pub(super) async fn remove_issuer(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Done>, AppError> {
    let (_, index) = st
        .propose(&actor.0, Command::RemoveIssuer { name: name.clone() })
        .await?;
    Ok(Json(Done {
        message: format!("removed issuer {name}"),
        index: Some(index),
    }))
}

/// `cert issue NAME --issuer ACME`: records the certificate; the leader's ACME duty opens
/// its order at its next pass.
pub(super) async fn issue(
    st: &AppState,
    actor: &Actor,
    body: &IssueRequest,
    sans: Vec<String>,
) -> Result<Json<AcmeState>, AppError> {
    let issuer = body.issuer.clone().unwrap_or_default();
    if !st
        .sm
        .inventory()
        .issuance
        .acme_issuers
        .contains_key(&issuer)
    {
        return Err(AppError::BadRequest {
            code: "unknown_issuer",
            message: format!("no issuer named {issuer:?}"),
            hint: Some(format!(
                "run `certraft issuer list`; add it with `certraft issuer acme add {issuer} --directory URL --email E`, or pass --issuer local"
            )),
        });
    }
    let challenge = body.challenge.unwrap_or_default();
    if challenge == ChallengeKind::Http01 {
        if let Some(w) = sans.iter().find(|s| s.starts_with("*.")) {
            return Err(invalid(
                format!("{w} is a wildcard, which ACME validates only by dns-01; http-01 cannot prove it"),
                "issue the wildcard from --issuer local, or list the exact names",
            ));
        }
    }
    if let Some(f) = body.fallback.as_deref().filter(|f| *f != LOCAL_ISSUER) {
        return Err(invalid(
            format!("--fallback {f:?} is not an issuer the cluster can fall back on"),
            "pass --fallback local, or leave it out",
        ));
    }
    if body.lifetime_secs.is_some() {
        return Err(invalid(
            "the CA decides an ACME certificate's lifetime; --days and --lifetime are for --issuer local".into(),
            "leave --days out (renewal still comes at two thirds of the lifetime, or --renew-at)",
        ));
    }
    let permille = body.renew_at_permille.unwrap_or(DEFAULT_RENEW_AT_PERMILLE);
    if !(100..=950).contains(&permille) {
        return Err(AppError::bad_request(
            "invalid_input",
            format!("renewal at {permille}‰ of the lifetime is outside 100–950‰ (default 667: two thirds)"),
        ));
    }
    let managed = Managed {
        issuer,
        sans,
        key_type: body.key,
        lifetime_secs: 0,
        renew_at_permille: permille,
        challenge: Some(challenge),
        fallback: body.fallback.clone(),
        ..Default::default()
    };
    st.propose(
        &actor.0,
        Command::ManageAcme {
            name: body.name.clone(),
            managed,
            make_default: body.make_default,
        },
    )
    .await?;
    let inv = st.sm.inventory();
    state_of(&inv, &body.name)
        .map(Json)
        .ok_or_else(|| AppError::Internal("the committed ACME certificate is absent".into()))
}

/// `GET /api/v1/acme/{name}`.
pub(super) async fn show(
    State(st): State<S>,
    Path(name): Path<String>,
) -> Result<Json<AcmeState>, AppError> {
    let inv = st.read_barrier().await?;
    state_of(&inv, &name)
        .map(Json)
        .ok_or_else(|| AppError::NotFound {
            code: "not_found",
            message: format!("no certificate named {name} is obtained over ACME"),
            hint: Some("run `certraft cert list`".into()),
        })
}

/// Where the ACME certificate `name` stands.
pub(crate) fn state_of(inv: &Inventory, name: &str) -> Option<AcmeState> {
    let m = inv.issuance.managed.get(name).filter(|m| m.is_acme())?;
    let b = inv
        .bundles
        .get(name)
        .filter(|b| b.status == BundleStatus::Active);
    let current = b.map(|b| crate::inventory::Current {
        not_before: b.meta.not_before,
        not_after: b.meta.not_after,
        id: b.id(),
        fallback: m.on_fallback,
    });
    let next = match acme_step(name, m, current, now()) {
        AcmeStep::WaitUntil(at) => at,
        AcmeStep::Open | AcmeStep::Resume => now(),
    };
    let state = if m.on_fallback {
        "fallback"
    } else if m.order.is_some() {
        "validating"
    } else if m.renewal.consecutive_failures > 0 {
        "retrying"
    } else if b.is_some() {
        "issued"
    } else {
        "ordering"
    };
    Some(AcmeState {
        name: name.to_string(),
        issuer: m.issuer.clone(),
        sans: m.sans.clone(),
        key: m.key_type,
        challenge: m.challenge.unwrap_or_default(),
        state: state.into(),
        order_url: m.order.as_ref().map(|o| o.url.clone()),
        id: b.map(|b| hex::encode(b.id())),
        fallback: m.fallback.clone(),
        last_error: m.renewal.last_result.clone().filter(|r| r != "ok"),
        consecutive_failures: m.renewal.consecutive_failures,
        next_attempt: Some(fmt_time(next)),
        next_attempt_unix: Some(next),
    })
}
