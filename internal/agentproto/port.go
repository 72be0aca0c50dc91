package agentproto

// Port forwarding.
//
//   - port.connect {port}: the agent dials 127.0.0.1:port inside the
//     sandbox. On success it answers one EventPortConnected line and from
//     then on the connection is a raw byte pipe to the port, both ways,
//     until either side closes (a half-close is passed on). When nothing
//     listens on the port the answer is a final EventError of kind
//     unavailable; a port outside 1-65535 is invalid_argument.
const OpPortConnect = "port.connect"

// EventPortConnected is the answer to OpPortConnect once the agent has
// connected to the port; raw bytes follow it.
const EventPortConnected = "connected"

// PortRequest is the request of OpPortConnect.
type PortRequest struct {
	// Port is the TCP port on the sandbox's loopback interface, 1-65535.
	Port int `json:"port"`
}
