// Package socketio tests the Socket.IO transport with the official
// socket.io-client (npm, pinned by package-lock.json): client.test.mjs is a
// node:test script that takes SDBX_URL and SDBX_API_KEY, and the Go tests
// here start a server and run it.
package socketio
