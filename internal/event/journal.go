package event

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/steady-ha/steady/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// On-disk format, version 1. A segment file is named after the sequence
// number of its first event (20 decimal digits, ".seg"). It starts with a
// 16-byte header: the magic "steadyjournal" padded to 12 bytes, then the
// format version as a little-endian uint32. Records follow:
//
//	uint32 payload length | uint32 CRC-32C of the rest | uint64 seq | int64 unix nanoseconds | JSON event
//
// The seq and time are outside the JSON so that recovery and retention can
// scan a segment without decoding events.
const (
	segmentMagic   = "steadyjournl"
	segmentVersion = 1
	headerSize     = 16
	recordHeader   = 24
	// maxRecord bounds one encoded event; a larger length field means a
	// corrupt record, not a huge event.
	maxRecord = 1 << 20
	// indexEvery is the distance in events between sparse index entries.
	indexEvery = 256
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned by a journal or bus that has been closed.
var ErrClosed = errors.New("event: journal closed")

// ErrTooLarge is returned for an event whose encoding exceeds 1 MiB.
var ErrTooLarge = errors.New("event: event too large")

// JournalOptions configures OpenJournal.
type JournalOptions struct {
	Dir          string
	SegmentBytes int64
	MaxBytes     int64
	MaxAge       time.Duration
	// CacheEvents is how many recent events are kept in memory for
	// readers (default 4096).
	CacheEvents int
	Now         func() time.Time
	Logger      *slog.Logger
}

type indexEntry struct {
	seq uint64
	off int64
}

// segment describes one file. Fields are guarded by Journal.mu.
type segment struct {
	path     string
	first    uint64 // from the name: the seq of its first event (or next, when empty)
	last     uint64 // 0 when empty
	lastTime time.Time
	size     int64 // durable size; readers never read past it
	index    []indexEntry
}

// Journal is an append-only, crash-safe log of events on local disk.
// Append may be called from any goroutine; it returns once the events are
// on stable storage (written and fdatasync'ed). Read and Wait may be called
// concurrently with Append.
type Journal struct {
	opts   JournalOptions
	log    *slog.Logger
	reqs   chan *appendReq
	done   chan struct{} // closed when the writer has exited
	closed chan struct{} // closed by Close

	// sendMu makes enqueueing and closing exclusive, so that no request
	// is queued after the writer has drained the queue for the last time.
	sendMu   sync.RWMutex
	stopping bool // guarded by sendMu

	mu       sync.RWMutex // guards everything below
	segs     []*segment   // oldest first; the last one is active
	next     uint64       // seq the next event will get
	cache    []Event      // ring of the newest events, cache[i%len] holds seq cacheBase+i
	cacheLen int
	cacheTop uint64 // seq of the newest cached event (0: none)
	changed  chan struct{}
	werr     error // a write error that stopped the writer

	// owned by the writer goroutine
	file *os.File
	buf  bytes.Buffer
}

type appendReq struct {
	evs  []Event
	done chan error
}

// OpenJournal opens or creates the journal in opts.Dir, repairs a torn
// tail left by a crash, and starts its writer.
func OpenJournal(opts JournalOptions) (*Journal, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 16 << 20
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 16 * opts.SegmentBytes
	}
	if opts.CacheEvents <= 0 {
		opts.CacheEvents = 4096
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("event: journal directory: %w", err)
	}
	j := &Journal{
		opts:    opts,
		log:     opts.Logger,
		reqs:    make(chan *appendReq, 256),
		done:    make(chan struct{}),
		closed:  make(chan struct{}),
		cache:   make([]Event, opts.CacheEvents),
		changed: make(chan struct{}),
	}
	if err := j.recover(); err != nil {
		return nil, err
	}
	if err := j.warmCache(); err != nil {
		j.file.Close()
		return nil, err
	}
	go j.writer()
	return j, nil
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

// recover scans the existing segments, truncates a torn tail of the last
// one and opens it for appending.
func (j *Journal) recover() error {
	names, err := filepath.Glob(filepath.Join(j.opts.Dir, "*.seg"))
	if err != nil {
		return fmt.Errorf("event: journal: %w", err)
	}
	type named struct {
		path  string
		first uint64
	}
	var found []named
	for _, p := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), ".seg"), 10, 64)
		if err != nil || first == 0 {
			j.log.Warn("ignoring a file that is not a journal segment", "path", p)
			continue
		}
		found = append(found, named{p, first})
	}
	sort.Slice(found, func(a, b int) bool { return found[a].first < found[b].first })
	for i, n := range found {
		seg := &segment{path: n.path, first: n.first}
		last := i == len(found)-1
		valid, err := scanSegment(j.log, seg, last)
		if err != nil {
			return err
		}
		if last {
			if err := j.openActive(seg, valid); err != nil {
				return err
			}
		}
		j.segs = append(j.segs, seg)
	}
	if len(j.segs) == 0 {
		return j.createSegment(1)
	}
	act := j.segs[len(j.segs)-1]
	j.next = act.first
	if act.last != 0 {
		j.next = act.last + 1
	}
	j.retainLocked()
	return nil
}

// scanSegment reads a segment's records to learn its last seq and time
// and to build its sparse index. It returns the length of the valid prefix.
// A bad record in the last (active) segment is a torn write and is cut
// off by the caller; in an older segment it is reported and the rest of
// that segment is ignored.
func scanSegment(log *slog.Logger, seg *segment, active bool) (int64, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return 0, fmt.Errorf("event: journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if active {
			return 0, nil // crashed while creating it; rewritten below
		}
		return 0, fmt.Errorf("event: journal segment %s: no header: %w", seg.path, err)
	}
	if string(hdr[:12]) != segmentMagic {
		return 0, fmt.Errorf("event: journal segment %s: not a steady journal segment", seg.path)
	}
	if v := binary.LittleEndian.Uint32(hdr[12:]); v != segmentVersion {
		return 0, fmt.Errorf("event: journal segment %s: format version %d, this steady reads %d", seg.path, v, segmentVersion)
	}
	off := int64(headerSize)
	n := 0
	for {
		seq, ts, size, err := readRecordHeader(r, nil)
		if err == io.EOF {
			break
		}
		if err != nil || (seg.last != 0 && seq != seg.last+1) || (seg.last == 0 && seq != seg.first) {
			if err == nil {
				err = fmt.Errorf("sequence %d out of order", seq)
			}
			if !active {
				log.Warn("event journal: ignoring the damaged end of a segment", "path", seg.path, "offset", off, "err", err)
			}
			break
		}
		if n%indexEvery == 0 {
			seg.index = append(seg.index, indexEntry{seq, off})
		}
		n++
		seg.last, seg.lastTime = seq, time.Unix(0, ts)
		off += int64(size)
	}
	seg.size = off
	return off, nil
}

// readRecordHeader reads one record, checks its CRC and returns its seq,
// time and total size; the payload goes to payload when it is non-nil.
func readRecordHeader(r *bufio.Reader, payload *[]byte) (seq uint64, ts int64, size int, err error) {
	var h [recordHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, 0, 0, errors.New("truncated record header")
		}
		return 0, 0, 0, err
	}
	n := binary.LittleEndian.Uint32(h[0:])
	if n == 0 || n > maxRecord {
		return 0, 0, 0, fmt.Errorf("implausible record length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, 0, 0, errors.New("truncated record")
	}
	crc := crc32.Update(crc32.Checksum(h[8:], crcTable), crcTable, body)
	if crc != binary.LittleEndian.Uint32(h[4:]) {
		return 0, 0, 0, errors.New("checksum mismatch")
	}
	if payload != nil {
		*payload = body
	}
	return binary.LittleEndian.Uint64(h[8:]), int64(binary.LittleEndian.Uint64(h[16:])), recordHeader + int(n), nil
}

func (j *Journal) openActive(seg *segment, valid int64) error {
	if valid < headerSize {
		// The header itself was torn; start the file again.
		return j.rewriteHeader(seg)
	}
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("event: journal: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("event: journal: %w", err)
	}
	if st.Size() > valid {
		j.log.Warn("event journal: cutting a torn write left by a crash", "path", seg.path, "bytes", st.Size()-valid)
		if err := f.Truncate(valid); err != nil {
			f.Close()
			return fmt.Errorf("event: journal: truncating torn tail: %w", err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			f.Close()
			return fmt.Errorf("event: journal: %w", err)
		}
	}
	if _, err := f.Seek(valid, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("event: journal: %w", err)
	}
	j.file = f
	return nil
}

func (j *Journal) rewriteHeader(seg *segment) error {
	f, err := os.OpenFile(seg.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("event: journal: %w", err)
	}
	if err := writeHeader(f); err != nil {
		f.Close()
		return err
	}
	seg.size, seg.last, seg.index = headerSize, 0, nil
	j.file = f
	return nil
}

func writeHeader(f *os.File) error {
	var hdr [headerSize]byte
	copy(hdr[:], segmentMagic)
	binary.LittleEndian.PutUint32(hdr[12:], segmentVersion)
	if _, err := f.Write(hdr[:]); err != nil {
		return fmt.Errorf("event: journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("event: journal: %w", err)
	}
	return nil
}

// createSegment starts a new active segment whose first event is first.
// Called at open and by the writer; the caller holds no lock at open and
// j.mu when rotating.
func (j *Journal) createSegment(first uint64) error {
	seg := &segment{path: filepath.Join(j.opts.Dir, segmentName(first)), first: first}
	if err := j.rewriteHeader(seg); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(j.opts.Dir); err != nil {
		return err
	}
	j.segs = append(j.segs, seg)
	j.next = first
	return nil
}

// warmCache loads the newest events into the read cache.
func (j *Journal) warmCache() error {
	last := j.next - 1
	if last == 0 {
		return nil
	}
	from := uint64(1)
	if last > uint64(j.opts.CacheEvents) {
		from = last - uint64(j.opts.CacheEvents) + 1
	}
	evs, err := j.readDisk(from-1, j.opts.CacheEvents)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		j.cachePutLocked(ev)
	}
	return nil
}

func (j *Journal) cachePutLocked(ev Event) {
	j.cache[ev.Seq%uint64(len(j.cache))] = ev
	j.cacheTop = ev.Seq
	if j.cacheLen < len(j.cache) {
		j.cacheLen++
	}
}

// Append assigns sequence numbers to evs (in order, in place) and returns
// once they are durable. The events must already be complete (time, class,
// subclass, publisher, node); Bus.Publish fills those in.
func (j *Journal) Append(ctx context.Context, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	req := &appendReq{evs: evs, done: make(chan error, 1)}
	j.sendMu.RLock()
	if j.stopping {
		j.sendMu.RUnlock()
		return ErrClosed
	}
	select {
	case j.reqs <- req:
	case <-ctx.Done():
		j.sendMu.RUnlock()
		return ctx.Err()
	}
	j.sendMu.RUnlock()
	// Once queued the events will be written; wait for the outcome even if
	// ctx ends, so that an error is never reported for a durable event.
	return <-req.done
}

// writer is the only goroutine that writes segment files. It takes every
// queued request, writes them with one write and one fdatasync (group
// commit), and only then answers them and wakes readers.
func (j *Journal) writer() {
	defer close(j.done)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	var batch []*appendReq
	for {
		select {
		case req := <-j.reqs:
			batch = append(batch[:0], req)
		drain:
			for len(batch) < 1024 {
				select {
				case r := <-j.reqs:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			j.commit(batch)
		case <-tick.C:
			j.mu.Lock()
			j.retainLocked()
			j.mu.Unlock()
		case <-j.closed:
			// Answer what is still queued, then stop.
			for {
				select {
				case r := <-j.reqs:
					j.commit([]*appendReq{r})
				default:
					return
				}
			}
		}
	}
}

func (j *Journal) commit(batch []*appendReq) {
	j.mu.RLock()
	werr, seq := j.werr, j.next
	j.mu.RUnlock()
	if werr != nil {
		for _, r := range batch {
			r.done <- werr
		}
		return
	}
	// Encode every event; a bad one fails only its own request.
	type encoded struct {
		req  *appendReq
		recs [][]byte
		err  error
	}
	enc := make([]encoded, 0, len(batch))
	for _, r := range batch {
		e := encoded{req: r}
		for i := range r.evs {
			r.evs[i].Seq = seq + uint64(i)
			b, err := json.Marshal(&r.evs[i])
			if err == nil && len(b) > maxRecord {
				err = fmt.Errorf("%w: %d bytes encoded, at most %d", ErrTooLarge, len(b), maxRecord)
			}
			if err != nil {
				e.err, e.recs = fmt.Errorf("event: encoding %s/%s: %w", r.evs[i].Class, r.evs[i].Subclass, err), nil
				break
			}
			e.recs = append(e.recs, b)
		}
		if e.err == nil {
			seq += uint64(len(r.evs))
		} else {
			for i := range r.evs {
				r.evs[i].Seq = 0
			}
		}
		enc = append(enc, e)
	}
	j.mu.Lock()
	err := j.writeLocked(func(write func(ev *Event, payload []byte) error) error {
		for _, e := range enc {
			for i, b := range e.recs {
				if err := write(&e.req.evs[i], b); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		j.werr = fmt.Errorf("event: journal write failed, no further events are accepted until restart: %w", err)
		j.log.Error("event journal write failed", "err", err)
	}
	ch := j.changed
	if err == nil {
		j.changed = make(chan struct{})
	}
	j.mu.Unlock()
	for _, e := range enc {
		switch {
		case e.err != nil:
			e.req.done <- e.err
		case err != nil:
			e.req.done <- j.werr
		default:
			e.req.done <- nil
		}
	}
	if err == nil {
		close(ch)
	}
}

// writeLocked encodes records into the buffer (rotating segments when the
// active one is full), writes and syncs them, then publishes them to the
// segment metadata and the cache. j.mu is held.
func (j *Journal) writeLocked(each func(write func(ev *Event, payload []byte) error) error) error {
	act := j.segs[len(j.segs)-1]
	pending := act.size
	var added []Event
	flush := func() error {
		if j.buf.Len() == 0 {
			return nil
		}
		if _, err := j.file.Write(j.buf.Bytes()); err != nil {
			return err
		}
		j.buf.Reset()
		return unix.Fdatasync(int(j.file.Fd()))
	}
	publish := func() {
		for _, ev := range added {
			j.cachePutLocked(ev)
		}
		added = added[:0]
	}
	err := each(func(ev *Event, payload []byte) error {
		size := int64(recordHeader + len(payload))
		if pending > headerSize && pending+size > j.opts.SegmentBytes {
			if err := flush(); err != nil {
				return err
			}
			act.size = pending
			publish()
			if err := j.file.Close(); err != nil {
				return err
			}
			if err := j.createSegment(ev.Seq); err != nil {
				return err
			}
			act, pending = j.segs[len(j.segs)-1], headerSize
			j.retainLocked()
		}
		var h [recordHeader]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
		binary.LittleEndian.PutUint64(h[8:], ev.Seq)
		binary.LittleEndian.PutUint64(h[16:], uint64(ev.Time.UnixNano()))
		binary.LittleEndian.PutUint32(h[4:], crc32.Update(crc32.Checksum(h[8:], crcTable), crcTable, payload))
		j.buf.Write(h[:])
		j.buf.Write(payload)
		if (ev.Seq-act.first)%indexEvery == 0 {
			act.index = append(act.index, indexEntry{ev.Seq, pending})
		}
		pending += size
		act.last, act.lastTime = ev.Seq, ev.Time
		j.next = ev.Seq + 1
		added = append(added, *ev)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		j.buf.Reset()
		return err
	}
	act.size = pending
	publish()
	return nil
}

// retainLocked removes the oldest segments while the journal is over its
// size or they are older than MaxAge. The active segment always stays, so
// the next sequence number is never forgotten.
func (j *Journal) retainLocked() {
	var total int64
	for _, s := range j.segs {
		total += s.size
	}
	cutoff := j.opts.Now().Add(-j.opts.MaxAge)
	for len(j.segs) > 1 {
		old := j.segs[0]
		if total <= j.opts.MaxBytes && !(j.opts.MaxAge > 0 && old.lastTime.Before(cutoff)) {
			break
		}
		if err := os.Remove(old.path); err != nil && !os.IsNotExist(err) {
			j.log.Warn("event journal: cannot remove an old segment", "path", old.path, "err", err)
			break
		}
		j.log.Debug("event journal: removed old segment", "path", old.path, "first", old.first, "last", old.last)
		total -= old.size
		j.segs = j.segs[1:]
	}
}

// Err is the write error that stopped the journal, or nil.
func (j *Journal) Err() error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.werr == ErrClosed {
		return nil
	}
	return j.werr
}

// LastSeq is the sequence number of the newest durable event (0: none).
func (j *Journal) LastSeq() uint64 {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.next - 1
}

// FirstSeq is the oldest sequence number still held.
func (j *Journal) FirstSeq() uint64 {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.segs[0].first
}

// Changed returns a channel that is closed when events newer than the
// current LastSeq become readable.
func (j *Journal) Changed() <-chan struct{} {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.changed
}

// JournalStats describes the journal for status and metrics.
type JournalStats struct {
	FirstSeq, LastSeq uint64
	Segments          int
	Bytes             int64
}

// Stats returns the current size of the journal.
func (j *Journal) Stats() JournalStats {
	j.mu.RLock()
	defer j.mu.RUnlock()
	st := JournalStats{FirstSeq: j.segs[0].first, LastSeq: j.next - 1, Segments: len(j.segs)}
	for _, s := range j.segs {
		st.Bytes += s.size
	}
	return st
}

// Read returns up to max events with a sequence number greater than after,
// oldest first. Events removed by retention are skipped silently; compare
// the first returned Seq with after+1 (or FirstSeq) to detect that.
func (j *Journal) Read(after uint64, max int) ([]Event, error) {
	if max <= 0 {
		return nil, nil
	}
	j.mu.RLock()
	top, n := j.cacheTop, uint64(j.cacheLen)
	if top != 0 && after >= top-n { // the cache holds after+1 .. top
		if after >= top {
			j.mu.RUnlock()
			return nil, nil
		}
		cnt := min(top-after, uint64(max))
		out := make([]Event, cnt)
		for i := range out {
			out[i] = j.cache[(after+1+uint64(i))%uint64(len(j.cache))]
		}
		j.mu.RUnlock()
		return out, nil
	}
	j.mu.RUnlock()
	return j.readDisk(after, max)
}

// readDisk reads events after `after` from the segment files.
func (j *Journal) readDisk(after uint64, max int) ([]Event, error) {
	j.mu.RLock()
	type part struct {
		path  string
		off   int64
		limit int64
	}
	var parts []part
	for _, s := range j.segs {
		if s.last == 0 || s.last <= after {
			continue
		}
		off := int64(headerSize)
		for _, ie := range s.index {
			if ie.seq > after+1 {
				break
			}
			off = ie.off
		}
		parts = append(parts, part{s.path, off, s.size})
	}
	j.mu.RUnlock()
	var out []Event
	for _, p := range parts {
		if len(out) >= max {
			break
		}
		evs, err := readSegment(p.path, p.off, p.limit, after, max-len(out))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed by retention meanwhile
			}
			return out, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

func readSegment(path string, off, limit int64, after uint64, max int) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, limit-off), 1<<16)
	var out []Event
	var payload []byte
	for len(out) < max {
		seq, _, _, err := readRecordHeader(r, &payload)
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, fmt.Errorf("event: journal %s: %w", path, err)
		}
		if seq <= after {
			continue
		}
		var ev Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			return out, fmt.Errorf("event: journal %s: event %d: %w", path, seq, err)
		}
		ev.Seq = seq
		out = append(out, ev)
	}
	return out, nil
}

// Close stops the writer after it has answered every queued Append, and
// closes the active segment.
func (j *Journal) Close() error {
	j.sendMu.Lock()
	if j.stopping {
		j.sendMu.Unlock()
		return nil
	}
	j.stopping = true
	j.sendMu.Unlock()
	close(j.closed)
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.werr == nil {
		j.werr = ErrClosed
	}
	return j.file.Close()
}
