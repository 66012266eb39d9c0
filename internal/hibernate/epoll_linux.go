package hibernate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// poller is the Loop's epoll instance and the eventfd that interrupts its
// wait.
type poller struct {
	epfd, evfd int
	events     []unix.EpollEvent // wait's buffer; only the Loop's goroutine
	ids        []uint64
}

// maxEvents is how many readiness events one wait returns at most.
const maxEvents = 256

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("hibernate: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("hibernate: eventfd: %w", err), unix.Close(epfd))
	}
	p := &poller{epfd: epfd, evfd: evfd, events: make([]unix.EpollEvent, maxEvents)}
	ev := unix.EpollEvent{Events: unix.EPOLLIN} // id 0
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		return nil, errors.Join(fmt.Errorf("hibernate: epoll_ctl eventfd: %w", err), p.close())
	}
	return p, nil
}

// arm reports the next input, hang-up or error on fd once, as id. A
// socket parked before (and not closed since) is still in the set,
// disarmed or with a stale id: it is modified, which costs one syscall.
func (p *poller) arm(fd int, id uint64) error {
	// One-shot: once reported, the socket is disarmed until the next
	// Park, so that a socket woken by its owner (no syscall) and then
	// read by its goroutine is not reported again and again. Level
	// triggered: input already waiting is reported at once.
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
	if errors.Is(err, unix.ENOENT) {
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	if err != nil {
		return fmt.Errorf("hibernate: epoll_ctl: %w", err)
	}
	return nil
}

// wait blocks until sockets are ready and returns their ids; id 0 is
// interrupt's. The slice is reused by the next call.
func (p *poller) wait() ([]uint64, error) {
	for {
		n, err := unix.EpollWait(p.epfd, p.events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("hibernate: epoll_wait: %w", err)
		}
		p.ids = p.ids[:0]
		for _, ev := range p.events[:n] {
			p.ids = append(p.ids, uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32)
		}
		return p.ids, nil
	}
}

// interrupt makes wait return id 0.
func (p *poller) interrupt() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(p.evfd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("hibernate: eventfd write: %w", err)
	}
	return nil
}

// close releases the descriptors; wait must have returned for good.
func (p *poller) close() error {
	return errors.Join(unix.Close(p.evfd), unix.Close(p.epfd))
}

// writeNonblock writes p to fd, a non-blocking socket (as Go's netpoller
// keeps every socket), until it is written or the socket's buffer is
// full: EAGAIN is not an error, only fewer bytes.
func writeNonblock(fd int, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(fd, p[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("hibernate: write: %w", err)
		}
		n += m
	}
	return n, nil
}
