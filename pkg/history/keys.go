package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// escape makes s free of 0x00 bytes, preserving order among strings without
// 0x00/0x01: 0x01 becomes 01 02 and 0x00 becomes 01 01. Ids and names are
// plain tokens in practice, so this is almost always a no-op.
func escape(dst []byte, s string) []byte {
	i := 0
	for i < len(s) && s[i] > 0x01 {
		i++
	}
	if i == len(s) {
		return append(dst, s...)
	}
	dst = append(dst, s[:i]...)
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case 0x00:
			dst = append(dst, 0x01, 0x01)
		case 0x01:
			dst = append(dst, 0x01, 0x02)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// tsKey maps t to 8 bytes that sort like the time: the zero time sorts
// first, then every time by its Unix nanoseconds.
func tsKey(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	n := t.UnixNano()
	if n == math.MinInt64 {
		n++ // keep 0 for the zero time
	}
	return uint64(n) ^ (1 << 63)
}

// rowKey is the key of a run or decision: project \x00 id.
func rowKey(project, id string) []byte {
	k := make([]byte, 0, len(project)+len(id)+1)
	k = escape(k, project)
	k = append(k, 0)
	return escape(k, id)
}

// projectPrefix is project \x00: every runs key of the project starts with
// it and no other key does.
func projectPrefix(project string) []byte {
	k := make([]byte, 0, len(project)+1+9+30)
	k = escape(k, project)
	return append(k, 0)
}

// idxPrefix is project \x00 field \x00, the same for an index on field.
func idxPrefix(project, field string) []byte {
	k := make([]byte, 0, len(project)+len(field)+2+9+30)
	k = escape(k, project)
	k = append(k, 0)
	k = escape(k, field)
	return append(k, 0)
}

// runKey is project \x00 ts \x00 runID, the key of a run row.
func runKey(project string, ts uint64, runID string) []byte {
	return appendTail(projectPrefix(project), ts, runID)
}

// idxKey is project \x00 field \x00 ts \x00 runID.
func idxKey(project, field string, ts uint64, runID string) []byte {
	return appendTail(idxPrefix(project, field), ts, runID)
}

// appendTail appends ts \x00 runID, the part every run key and index key of
// a run share.
func appendTail(k []byte, ts uint64, runID string) []byte {
	k = binary.BigEndian.AppendUint64(k, ts)
	k = append(k, 0)
	return escape(k, runID)
}

// rowHeader is what the index maintenance and the list filters need of a
// stored run, kept in front of its JSON so they don't decode it.
type rowHeader struct {
	ts       uint64 // first-seen CreatedAt (tsKey), the run's index position
	recSeq   uint64 // stream sequence of the newest record applied to the run (0: untracked)
	seq      int64  // snapshot Seq
	workflow string
	user     string
	status   string
}

var errBadRow = errors.New("history: corrupt run row")

// rowFixed is the fixed part of a row: ts, recSeq, seq.
const rowFixed = 24

// encodeRow: ts(8) recSeq(8) seq(8) uvarint-prefixed workflow, user,
// status, JSON. The ts and recSeq bytes come first so that a row can be
// encoded before they are known and patched with setRowTS and setRowRecSeq.
func encodeRow(h rowHeader, data []byte) []byte {
	v := make([]byte, 0, rowFixed+3*binary.MaxVarintLen16+len(h.workflow)+len(h.user)+len(h.status)+len(data))
	v = binary.BigEndian.AppendUint64(v, h.ts)
	v = binary.BigEndian.AppendUint64(v, h.recSeq)
	v = binary.BigEndian.AppendUint64(v, uint64(h.seq))
	for _, s := range []string{h.workflow, h.user, h.status} {
		v = binary.AppendUvarint(v, uint64(len(s)))
		v = append(v, s...)
	}
	return append(v, data...)
}

func setRowTS(row []byte, ts uint64) { binary.BigEndian.PutUint64(row, ts) }

func setRowRecSeq(row []byte, seq uint64) { binary.BigEndian.PutUint64(row[8:], seq) }

func decodeRow(v []byte) (rowHeader, []byte, error) {
	var h rowHeader
	if len(v) < rowFixed {
		return h, nil, errBadRow
	}
	h.ts = binary.BigEndian.Uint64(v)
	h.recSeq = binary.BigEndian.Uint64(v[8:])
	h.seq = int64(binary.BigEndian.Uint64(v[16:]))
	v = v[rowFixed:]
	var fields [3]string
	for i := range fields {
		n, w := binary.Uvarint(v)
		if w <= 0 || n > uint64(len(v)-w) {
			return h, nil, errBadRow
		}
		fields[i] = string(v[w : w+int(n)])
		v = v[w+int(n):]
	}
	h.workflow, h.user, h.status = fields[0], fields[1], fields[2]
	return h, v, nil
}

// unescape reverses escape.
func unescape(b []byte) string {
	if bytes.IndexByte(b, 0x01) < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == 0x01 && i+1 < len(b) {
			i++
			out = append(out, b[i]-1)
			continue
		}
		out = append(out, b[i])
	}
	return string(out)
}

// splitRowKey is the inverse of rowKey.
func splitRowKey(k []byte) (project, id string, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", "", false
	}
	return unescape(k[:i]), unescape(k[i+1:]), true
}

// Kinds of a by_seq entry: which record the sequence was last applied to.
const (
	seqRun      = 'r'
	seqDecision = 'd'
)

// seqEntry names a run or decision in the by_seq index: kind, then its rowKey.
func seqEntry(kind byte, project, id string) []byte {
	return append([]byte{kind}, rowKey(project, id)...)
}

// seqKey is a by_seq key: the stream sequence (8 bytes, big-endian, so keys
// sort by it), then the entry. One sequence may carry several entries: a
// decision and the queued rows of the runs it started.
func seqKey(seq uint64, entry []byte) []byte {
	k := make([]byte, 0, 8+len(entry))
	k = binary.BigEndian.AppendUint64(k, seq)
	return append(k, entry...)
}
