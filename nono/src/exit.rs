//! How commands end: an exit code plus, on failure, what to tell the user.

pub const FAILURE: i32 = 1;
pub const USAGE: i32 = 2;
/// `nono run` did not start the command.
pub const RUN_REFUSED: i32 = 125;
pub const NOT_EXECUTABLE: i32 = 126;
pub const NOT_FOUND: i32 = 127;

#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: Option<String>,
}

impl Exit {
    pub fn new(code: i32, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: Some(message.into()),
        }
    }
    pub fn failure(message: impl Into<String>) -> Exit {
        Exit::new(FAILURE, message)
    }
    pub fn usage(message: impl Into<String>) -> Exit {
        Exit::new(USAGE, message)
    }
}

pub type CmdResult = Result<i32, Exit>;
