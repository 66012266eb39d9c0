//go:build !linux

package hibernate

// poller is missing outside Linux: Park returns ErrUnsupported, and the
// caller keeps its connection awake.
type poller struct{}

func newPoller() (*poller, error)             { return nil, ErrUnsupported }
func (p *poller) arm(fd int, id uint64) error { return ErrUnsupported }
func (p *poller) wait() ([]uint64, error)     { return nil, ErrUnsupported }
func (p *poller) interrupt() error            { return nil }
func (p *poller) close() error                { return nil }

func writeNonblock(fd int, p []byte) (int, error) { return 0, ErrUnsupported }
