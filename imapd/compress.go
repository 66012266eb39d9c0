package imapd

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"net"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
)

// COMPRESS=DEFLATE (RFC 4978). After the tagged OK both directions are a
// raw DEFLATE stream (RFC 1951, no zlib header, §3). The session's
// connection (session.nc) becomes a deflateConn over what it was (the
// socket, or TLS over it, §4 allows both); deadlines and Close reach the
// connection under it, and the connection counter below counts the
// compressed bytes that cross the wire.
//
// Memory: a flate.Writer is about 1 MB whatever its level (its hash
// tables are arrays in the struct), so a session does not keep one.
// Each write of the session's bufio.Writer (a flush, or its 4 KiB buffer
// filling during a large response) takes a writer from the Server's pool,
// compresses into a pooled buffer, ends with a sync flush (RFC 4978 §6:
// the client must not wait for data the server has buffered) and gives
// the writer back before the bytes are written to the socket, so a slow
// client never holds one; the writers in use are bounded by the
// goroutines compressing at that instant. The price is the dictionary:
// each write is compressed on its own, as RFC 7692's
// "server_no_context_takeover" does for WebSocket. The level is
// flate.BestSpeed, whose Reset does not clear 640 KB of hash tables.
// What a compressed session keeps is the decompressor of the client's
// stream (its 32 KiB window and tables) and a 4 KiB read buffer:
// BENCHMARKS.md has the figure.
//
// A compressed session never hibernates (socket): the decompressor may
// hold bytes the socket no longer shows, as TLS may.

// deflateLevel is the compression level of every response.
const deflateLevel = flate.BestSpeed

// deflateChunk bounds the input compressed at once: a large write (a
// message literal bufio passes through) is compressed and sent in pieces,
// so the output buffer stays small.
const deflateChunk = 64 << 10

// deflateConn is a session's connection after COMPRESS DEFLATE. It is
// used as session.nc is: by the session's goroutine, writes under wmu.
type deflateConn struct {
	net.Conn               // under the compression: deadlines, Close, the wire
	src      *bufio.Reader // the client's compressed bytes
	r        io.ReadCloser // decompresses src
	srv      *Server       // its pools
}

// newDeflateConn compresses over nc. src reads nc, and may already hold
// compressed bytes the client sent right after its COMPRESS command.
func newDeflateConn(srv *Server, nc net.Conn, src *bufio.Reader) *deflateConn {
	return &deflateConn{Conn: nc, src: src, r: flate.NewReader(src), srv: srv}
}

// Read returns the client's bytes, decompressed. A read error (a timeout
// included) is final: the stream cannot resume, and the session ends on
// any read error anyway.
func (c *deflateConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write compresses p and sends it, ending with a sync flush, so that the
// client can decompress all of it at once.
func (c *deflateConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), deflateChunk)]
		out := c.srv.deflateBuffer()
		zw := c.srv.deflater(out)
		_, err := zw.Write(chunk)
		if err == nil {
			err = zw.Flush()
		}
		zw.Reset(nil)
		c.srv.deflaters.Put(zw)
		if err == nil {
			_, err = c.Conn.Write(out.Bytes())
		}
		out.Reset()
		c.srv.deflateBufs.Put(out)
		if err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// deflater returns a pooled flate.Writer writing to out.
func (s *Server) deflater(out io.Writer) *flate.Writer {
	if zw, ok := s.deflaters.Get().(*flate.Writer); ok {
		zw.Reset(out)
		return zw
	}
	zw, err := flate.NewWriter(out, deflateLevel)
	if err != nil {
		panic("imapd: flate.NewWriter: " + err.Error()) // deflateLevel is valid
	}
	return zw
}

// deflateBuffer returns an empty pooled buffer.
func (s *Server) deflateBuffer() *bytes.Buffer {
	if b, ok := s.deflateBufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

// compressed reports whether COMPRESS is on.
func (s *session) compressed() bool {
	_, ok := s.nc.(*deflateConn)
	return ok
}

// compress answers COMPRESS (RFC 4978 §3): the tagged OK goes out
// uncompressed, and everything after it, both ways, is DEFLATE. Bytes
// the client sent after its COMPRESS line are already compressed (§3:
// the client compresses from the first command after COMPRESS; it should
// not send them before the OK, but there is no harm in reading them).
// The caller holds wmu.
func (s *session) compress(tag string, a *wire.Compress) error {
	if a.Mechanism != "DEFLATE" {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unknown compression mechanism"}
	}
	if s.compressed() {
		// RFC 4978 §3: NO with COMPRESSIONACTIVE when it is on already.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "COMPRESSIONACTIVE", Text: "DEFLATE already active"}
	}
	s.noTagged = true
	s.w.Tagged(tag, wire.OK, wire.Code{}, "DEFLATE active")
	if err := s.flush(); err != nil {
		return err
	}
	dc := newDeflateConn(s.srv, s.nc, s.br)
	s.nc = dc
	s.br = s.srv.readers.Get().(*bufio.Reader)
	s.br.Reset(dc)
	s.p.SetReader(s.br)
	s.bw.Reset(dc)
	return nil
}
