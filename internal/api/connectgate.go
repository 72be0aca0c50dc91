package api

import (
	"sync"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
)

// connectGateTimeout bounds how long incoming packets are held (see
// connectGate); registration normally takes microseconds.
const connectGateTimeout = 10 * time.Second

// connectGate works around a race in the Socket.IO server library
// (servers/socket v3.0.6, namespace._doConnect): it queues the CONNECT
// answer to the client before it records the socket under its namespace,
// and a packet of the client that arrives in between is taken as a
// protocol violation that closes the connection. socket.io-client sends its
// buffered emits as soon as the CONNECT answer arrives, so a client that
// emits at once can lose its connection.
//
// The gate holds a connection's incoming data from the moment the CONNECT
// answer to namespace "/" is queued until our "connection" handler has run,
// which the library does only after recording the socket. It listens
// before the library's own "data" listener.
type connectGate struct {
	closed chan struct{} // closed with the connection

	mu      sync.Mutex
	pending chan struct{} // set from the CONNECT answer until open
}

// attachConnectGate installs a gate on a new Engine.IO connection. It must
// run in the engine's "connection" event, before the connection reads.
func attachConnectGate(conn engine.Socket) *connectGate {
	g := &connectGate{closed: make(chan struct{})}
	theirs := conn.Listeners("data")
	conn.RemoveAllListeners("data")
	_ = conn.On("data", g.hold)
	_ = conn.On("data", theirs...)
	_ = conn.On("packetCreate", g.onPacketCreate)
	_ = conn.Once("close", func(...any) { close(g.closed) })
	return g
}

// onPacketCreate closes the gate when the CONNECT answer for namespace "/"
// (`0{"sid":...}`) is queued.
func (g *connectGate) onPacketCreate(args ...any) {
	p, ok := firstArg[*packet.Packet](args)
	if !ok || p.Type != packet.MESSAGE {
		return
	}
	b, ok := p.Data.(interface{ Peek(int) ([]byte, error) })
	if !ok {
		return
	}
	if head, err := b.Peek(2); err != nil || string(head) != "0{" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == nil {
		g.pending = make(chan struct{})
	}
}

// open lets held and later data through.
func (g *connectGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending != nil {
		close(g.pending)
		g.pending = nil
	}
}

// hold is the first "data" listener: it waits while the gate is closed.
func (g *connectGate) hold(...any) {
	g.mu.Lock()
	ch := g.pending
	g.mu.Unlock()
	if ch == nil {
		return
	}
	t := time.NewTimer(connectGateTimeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-g.closed:
	case <-t.C:
	}
}

// connectGates finds the gate of a connection.
type connectGates struct {
	m sync.Map // engine socket id → *connectGate
}

// onEngineConnection is the engine's "connection" listener.
func (gs *connectGates) onEngineConnection(args ...any) {
	conn, ok := firstArg[engine.Socket](args)
	if !ok {
		return
	}
	id := conn.Id()
	gs.m.Store(id, attachConnectGate(conn))
	_ = conn.Once("close", func(...any) { gs.m.Delete(id) })
}

// open opens the gate of conn, if it has one.
func (gs *connectGates) open(conn engine.Socket) {
	if g, ok := gs.m.Load(conn.Id()); ok {
		g.(*connectGate).open()
	}
}
