//! Alert rules evaluated at each window close (being built).
