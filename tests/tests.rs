//! Integration tests: the real binary, in a temporary home, through the names a
//! user types. One test binary, so it links once.

mod support;

mod history;
mod manager;
