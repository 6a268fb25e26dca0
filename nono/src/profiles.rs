//! Where profiles come from on this machine: built-ins, the user's profile directory, files.
