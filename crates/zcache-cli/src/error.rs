//! One error type for the whole command: a message and the exit code it ends with.

use std::fmt;

/// Exit code of usage and input errors (bad arguments, missing or malformed input).
pub const EXIT_INPUT: u8 = 2;
/// Exit code of failures while running (missing privileges, I/O, a library error).
pub const EXIT_RUNTIME: u8 = 1;

/// An error that ends the command: printed as one line on stderr.
#[derive(Debug)]
pub struct CliError {
    /// Process exit code.
    pub code: u8,
    /// The message (one line).
    pub message: String,
}

impl CliError {
    /// A usage or input error (exit code 2).
    pub fn input(message: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_INPUT,
            message: message.into(),
        }
    }

    /// A failure while running (exit code 1).
    pub fn runtime(message: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_RUNTIME,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it to one line whatever a library put in its message.
        let mut first = true;
        for line in self
            .message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(line)?;
            first = false;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_print_on_one_line_with_their_codes() {
        let e = CliError::input("bad\n  corpus\n");
        assert_eq!(e.to_string(), "bad corpus");
        assert_eq!(e.code, EXIT_INPUT);
        assert_eq!(CliError::runtime("x").code, EXIT_RUNTIME);
    }
}
