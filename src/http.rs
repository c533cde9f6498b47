//! `GET /metrics` over HTTP (being built).
