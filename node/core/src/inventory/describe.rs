//! `Command::describe`: the one-line text of each command in the audit log (never secret
//! material).

use super::model::*;
use super::request::*;

impl Command {
    /// A short description for the audit log; never secret material.
    pub fn describe(&self) -> String {
        match self {
            Command::Import {
                bundle,
                make_default,
            } => format!(
                "import {} ({}){}",
                bundle.name,
                hex::encode(&bundle.sealed.id[..8]),
                if *make_default { " as default" } else { "" }
            ),
            Command::Remove { name, force } => {
                format!(
                    "remove {name}{}",
                    if *force == Force::Yes { " --force" } else { "" }
                )
            }
            Command::SetDefault { name } => format!("set default {name}"),
            Command::Rotate { old, new, .. } => format!(
                "rotate {old} to {} ({})",
                new.name,
                hex::encode(&new.sealed.id[..8])
            ),
            Command::CreateJoinToken { token } => {
                let role = match token.role {
                    NodeRole::Voter => "voter",
                    NodeRole::Learner => "learner",
                    NodeRole::Witness => "witness",
                };
                format!(
                    "create join token ({role}, expires {})",
                    crate::bundle::assemble::fmt_time(token.expires_at)
                )
            }
            Command::ConsumeJoinToken { requested, .. } => match requested {
                Some(id) => format!("join token used by node {id}"),
                None => "join token used by a new node".into(),
            },
            Command::CreateAdminToken { token } => format!("create admin token {}", token.name),
            Command::Record { what, .. } => what.clone(),
            Command::EnableFeature { feature } => format!("enable feature {}", feature.name()),
            Command::AddTicketKey { key } => format!("rotate session-ticket key to {}", key.id),
            Command::Restore { bundles, .. } => {
                format!("restore backup of {} bundles", bundles.len())
            }
            Command::CreateCsr { csr } => format!(
                "create csr {} ({}, CN {}, {} names)",
                csr.name,
                csr.key_type,
                csr.common_name,
                csr.sans.len()
            ),
            Command::RemoveCsr { name } => format!("remove csr {name}"),
            Command::CompleteCsr { csr, bundle, .. } => format!(
                "complete csr {csr} as {} ({})",
                bundle.name,
                hex::encode(&bundle.sealed.id[..8])
            ),
            Command::SetLocalIssuer { issuer } => format!("create local issuer {}", issuer.subject),
            Command::Issue {
                bundle, managed, ..
            } => format!(
                "issue {} ({}) from {}, {} key, valid {} s",
                bundle.name,
                hex::encode(&bundle.sealed.id[..8]),
                managed.issuer,
                managed.key_type,
                managed.lifetime_secs
            ),
            Command::Renew { name, new, .. } => {
                format!("renew {name} ({})", hex::encode(&new.sealed.id[..8]))
            }
            Command::RenewalFailed { name, error, .. } => {
                format!("renewal of {name} failed: {error}")
            }
            Command::AddNotifyTarget { target } => {
                format!("add notify target {} ({})", target.name, target.url)
            }
            Command::RemoveNotifyTarget { name } => format!("remove notify target {name}"),
            Command::QueueExpiryNotices { notices } => {
                format!("queue {} expiry notice(s)", notices.len())
            }
            Command::NoticesDelivered { ids } => format!("{} notice(s) delivered", ids.len()),
            Command::AddAcmeIssuer { issuer } => format!(
                "add acme issuer {} ({}, account {})",
                issuer.name, issuer.directory, issuer.account_url
            ),
            Command::RemoveIssuer { name } => format!("remove issuer {name}"),
            Command::AcmeAccountRegistered {
                name, account_url, ..
            } => format!("acme issuer {name}'s account registered again at {account_url}"),
            Command::ManageAcme { name, managed, .. } => format!(
                "obtain {name} from {} ({}, {} key, {} names)",
                managed.issuer,
                managed.challenge.unwrap_or_default(),
                managed.key_type,
                managed.sans.len()
            ),
            Command::OpenAcmeOrder { name, order, .. } => {
                format!("acme order {} opened for {name}", order.url)
            }
            Command::FinishAcmeOrder {
                name,
                order_url,
                new,
            } => format!(
                "acme order {order_url} issued {name} ({})",
                hex::encode(&new.sealed.id[..8])
            ),
            Command::AcmeFailed {
                name,
                error,
                drop_order,
                ..
            } => format!(
                "acme attempt for {name} failed{}: {error}",
                if *drop_order { " (order dropped)" } else { "" }
            ),
            Command::ServeFallback { name, new, .. } => format!(
                "serve {name} from the local issuer while acme fails ({})",
                hex::encode(&new.sealed.id[..8])
            ),
            Command::SetRenewalWindow { name, start, .. } => format!(
                "renewal window of {name} starts {}",
                crate::bundle::assemble::fmt_time(*start)
            ),
            Command::OpenUiSession { session } => format!(
                "web console sign-in as {} from {} (until {})",
                session.actor,
                session.from,
                crate::bundle::assemble::fmt_time(session.expires_at)
            ),
            Command::CloseUiSession { .. } => "web console sign-out".into(),
            Command::SetConsole { name, hostnames } => {
                format!("console certificate {name} for {}", hostnames.join(", "))
            }
            Command::ClearConsole => "console certificate reset to the node certificate".into(),
        }
    }
}
