//! What the kernel's verifier said when it rejected a program: the line that names the error
//! (not the statistics it prints after it), and the whole log in a file for whoever needs the
//! instruction trace. The line picking is pure; writing the file is the only I/O.

use std::path::PathBuf;

/// Lines the verifier prints after its verdict (statistics), newest kernels first; the error
/// is the last line before them.
const STATISTICS: &[&str] = &[
    "processed ",
    "verification time ",
    "stack depth ",
    "max_states_per_insn ",
    "insns processed",
    "-- END PROG LOAD LOG --",
];

/// The line of `log` that names why the program was rejected: the last non-empty line that is
/// not one of the statistics the verifier prints after its verdict.
pub fn error_line(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !STATISTICS.iter().any(|s| l.starts_with(s)))
}

/// Writes the whole log to a file named after the program and this process, in the temporary
/// directory; `None` when it cannot be written (the message then says so).
pub fn save_log(program: &str, log: &str) -> Option<PathBuf> {
    let safe: String = program
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "profiler-verifier-{safe}-{}.log",
        std::process::id()
    ));
    std::fs::write(&path, log).ok().map(|()| path)
}

/// The one-line message for a rejected program: the verifier's error line and where the full
/// log is.
pub fn rejection_message(program: &str, io_error: &dyn std::fmt::Display, log: &str) -> String {
    let why = error_line(log).unwrap_or("no verifier output");
    let saved = match save_log(program, log) {
        Some(path) => format!("full verifier log in {}", path.display()),
        None => "the full verifier log could not be written".to_string(),
    };
    format!("the kernel rejected {program} ({io_error}): {why} ({saved})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_the_line_before_the_statistics() {
        // As 6.1 ends the log of a program whose two frames' stacks add up over 512 bytes.
        let log = "0: (bf) r6 = r1\n1: (85) call pc+12\ncombined stack size of 2 calls is 544. \
                   Too large\nverification time 2271 usec\nstack depth 32+512\nprocessed 1002 \
                   insns (limit 1000000) max_states_per_insn 1 total_states 72 peak_states 72 \
                   mark_read 18\n";
        assert_eq!(
            error_line(log),
            Some("combined stack size of 2 calls is 544. Too large")
        );
        // As 5.10 ends it: the error, then the processed line only.
        let log = "R10 invalid read from stack R10 off=-488 size=8\nprocessed 97 insns (limit \
                   1000000) max_states_per_insn 0 total_states 6 peak_states 6 mark_read 3\n\n";
        assert_eq!(
            error_line(log),
            Some("R10 invalid read from stack R10 off=-488 size=8")
        );
        // An unknown helper on a kernel that lacks it.
        assert_eq!(
            error_line("0: (85) call unknown#174\ninvalid func unknown#174\n"),
            Some("invalid func unknown#174")
        );
        assert_eq!(error_line("\nprocessed 1 insns\n"), None);
    }

    #[test]
    fn the_message_names_the_error_and_the_saved_log() {
        let log = "invalid func unknown#174\nprocessed 3 insns\n";
        let msg = rejection_message("cuda_enter", &"Invalid argument (os error 22)", log);
        assert!(
            msg.starts_with(
                "the kernel rejected cuda_enter (Invalid argument (os error 22)): invalid func \
                 unknown#174 (full verifier log in "
            ),
            "{msg}"
        );
        let path = save_log("cuda_enter", log).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), log);
        let _ = std::fs::remove_file(path);
    }
}
