//! Unit tests of the attach protocol and the hub.
