//! Running a host command (`zfs`, `nft`, `iptables-restore`) the way every
//! plugin that drives one needs: arguments as a list (never a shell), an
//! optional stdin, `LC_ALL=C` so that its messages can be matched, a time
//! limit so that a wedged tool cannot hang a session's stop, and a failure
//! that says what ran, how it ended and what it printed on stderr.

use std::ffi::OsStr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// How a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` failed ({status}): {stderr}")]
pub struct CommandFailure {
    /// The command line, for messages (arguments joined by spaces).
    pub command: String,
    /// `exit status: 1`, `timed out after 60s`, or why it could not start.
    pub status: String,
    pub stderr: String,
}

/// The command line as it reads in a message.
pub fn display(program: &OsStr, args: &[String]) -> String {
    let mut s = program.to_string_lossy().into_owned();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Runs `program args`, feeding `stdin` when given; its stdout on success.
pub async fn run(
    program: &OsStr,
    args: &[String],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, CommandFailure> {
    let command = display(program, args);
    let failure = |status: String, stderr: String| CommandFailure { command: command.clone(), status, stderr };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failure(format!("could not start: {e}"), String::new()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).await.map_err(|e| failure(format!("writing its stdin: {e}"), String::new()))?;
    }
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(failure(format!("waiting for it: {e}"), String::new())),
        Err(_) => return Err(failure(format!("timed out after {timeout:?}"), String::new())),
    };
    if !out.status.success() {
        return Err(failure(out.status.to_string(), String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".into(), script.into()]
    }

    #[tokio::test]
    async fn output_stdin_failures_and_timeouts() {
        let t = Duration::from_secs(5);
        assert_eq!(run("/bin/sh".as_ref(), &sh("echo hi"), None, t).await.as_deref(), Ok("hi\n"));
        assert_eq!(run("/bin/sh".as_ref(), &sh("tr a-z A-Z"), Some(b"piped"), t).await.as_deref(), Ok("PIPED"));
        let err = run("/bin/sh".as_ref(), &sh("echo 'no such thing' >&2; exit 3"), None, t).await.expect_err("fails");
        assert_eq!(err.command, "/bin/sh -c echo 'no such thing' >&2; exit 3");
        assert!(err.status.contains('3'), "{err}");
        assert_eq!(err.stderr, "no such thing");
        let err = run("/bin/sleep".as_ref(), &["5".into()], None, Duration::from_millis(200)).await.expect_err("slow");
        assert!(err.status.starts_with("timed out"), "{err}");
        let err = run("/nonexistent/tool".as_ref(), &[], None, t).await.expect_err("missing");
        assert!(err.status.starts_with("could not start"), "{err}");
    }
}
