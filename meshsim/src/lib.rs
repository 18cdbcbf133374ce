//! Virtual mesh for the demo and the tests: placeholder.
