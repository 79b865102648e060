//! `certraft audit`: the replicated audit log — who changed what, when, with what result.

use certraft::api::dto::AuditList;
use certraft::bundle::assemble::fmt_time;
use certraft::inventory::AuditRecord;

use crate::client::{Client, ConnectArgs};
use crate::fail::Failure;
use crate::output::Output;
use crate::table::Table;

#[derive(clap::Args, Debug)]
pub(crate) struct AuditArgs {
    /// Show the N most recent records (0: all the cluster keeps).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
}

pub(crate) fn run(args: &AuditArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    let client = Client::connect(connect)?;
    let reply = client.get::<AuditList>(&["audit"])?;
    let mut list = reply.body;
    let output = if args.limit == 0 || list.records.len() <= args.limit {
        Output::raw(reply.raw)
    } else {
        // The log is kept oldest first; the most recent are at the end.
        list.records.drain(..list.records.len() - args.limit);
        Output::json(&list)?
    };
    let human = if list.records.is_empty() {
        "the audit log is empty\n".to_string()
    } else {
        audit_table(&list.records)
    };
    Ok(output.human(human))
}

fn audit_table(records: &[AuditRecord]) -> String {
    let mut table = Table::new(["TIME", "ACTOR", "RESULT", "WHAT"]);
    for r in records {
        table.row([
            fmt_time(r.at),
            r.actor.clone(),
            r.result.clone(),
            r.what.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per record, oldest first, time in RFC 3339 UTC.
    #[test]
    fn audit_rows() {
        let records = [
            AuditRecord {
                at: 0,
                actor: "admin".into(),
                what: "import www".into(),
                result: "ok".into(),
                refused: false,
            },
            AuditRecord {
                at: 86_400,
                actor: "admin".into(),
                what: "remove www".into(),
                result: "is_default".into(),
                refused: true,
            },
        ];
        let text = audit_table(&records);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "TIME                  ACTOR  RESULT      WHAT");
        assert_eq!(
            lines[1],
            "1970-01-01T00:00:00Z  admin  ok          import www"
        );
        assert_eq!(
            lines[2],
            "1970-01-02T00:00:00Z  admin  is_default  remove www"
        );
    }
}
