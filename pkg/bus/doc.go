// Package bus wraps the NATS client side for ringmesh: client connections
// that reconnect forever, the streams and buckets of docs/ARCHITECTURE.md §3,
// typed subject builders and the message envelope. The embedded nats-server
// lives in pkg/bus/busserver, so a client binary that imports only this
// package does not link the server.
package bus
