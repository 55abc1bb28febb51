package session

import (
	"os"
	"sync"
)

// nullTun is the device of "dev null": reads block until Close, writes vanish.
// It lets a profile (and tests) run the protocol without a kernel device.
type nullTun struct {
	once   sync.Once
	closed chan struct{}
}

func newNullTun() *nullTun { return &nullTun{closed: make(chan struct{})} }

func (t *nullTun) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	<-t.closed
	return 0, os.ErrClosed
}

func (t *nullTun) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-t.closed:
		return 0, os.ErrClosed
	default:
	}
	return len(bufs), nil
}

func (t *nullTun) BatchSize() int { return 1 }

func (t *nullTun) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}
