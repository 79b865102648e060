//! Node log tails for test failures: the last lines of a log with ANSI colours stripped,
//! leaving out openraft's per-retry replication chatter about unreachable peers, which
//! drowns everything else while a node is down.

/// Whether `line` is openraft's retry chatter about an unreachable peer.
fn is_retry_chatter(line: &str) -> bool {
    line.contains("openraft::replication")
        || line.contains("replication_handler")
        || line.contains("Unreachable node")
}

/// The tail of one log.
pub struct Tail {
    /// The last lines kept, colours stripped.
    pub lines: Vec<String>,
    /// Lines in the whole log.
    pub total: usize,
    /// Retry chatter lines left out.
    pub left_out: usize,
}

impl Tail {
    /// The last `n` lines of `text` that are not retry chatter.
    pub fn of(text: &str, n: usize) -> Tail {
        let all: Vec<&str> = text.lines().collect();
        let kept: Vec<&str> = all
            .iter()
            .copied()
            .filter(|l| !is_retry_chatter(l))
            .collect();
        let from = kept.len().saturating_sub(n);
        Tail {
            lines: kept[from..].iter().map(|l| strip_ansi(l)).collect(),
            total: all.len(),
            left_out: all.len() - kept.len(),
        }
    }

    /// A header naming `what`, then the lines.
    pub fn render(&self, what: &str) -> String {
        let mut out = format!(
            "---- {what}: last {} of {} lines ({} replication retry lines left out) ----\n",
            self.lines.len(),
            self.total,
            self.left_out
        );
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// `line` without ANSI escape sequences (tracing's colours).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Colours are stripped, chatter is counted and left out, the tail is the last lines.
    #[test]
    fn a_tail_keeps_the_last_lines_without_colours_or_retry_chatter() {
        let log =
            "one\n\u{1b}[32mtwo\u{1b}[0m\nERROR openraft::replication: Unreachable node 3\nthree\n";
        let t = Tail::of(log, 2);
        assert_eq!(t.lines, ["two", "three"]);
        assert_eq!((t.total, t.left_out), (4, 1));
        assert_eq!(
            t.render("n1 stderr"),
            "---- n1 stderr: last 2 of 4 lines (1 replication retry lines left out) ----\ntwo\nthree\n"
        );
    }
}
