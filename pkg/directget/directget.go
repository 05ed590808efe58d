// Package directget reads a stream with JetStream's batched direct get
// ($JS.API.DIRECT.GET.<stream>): one request, the answers streamed back to
// an inbox up to an end-of-batch marker, with no consumer. The directory's
// index and record reads and the router's run-state lookups use it.
package directget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Request is a batched direct get (the server's JSApiMsgGetRequest fields
// this package uses).
type Request struct {
	Seq       uint64   `json:"seq,omitempty"`
	NextFor   string   `json:"next_by_subj,omitempty"`
	Batch     int      `json:"batch,omitempty"`
	MultiLast []string `json:"multi_last,omitempty"`
}

// MaxMultiLast is the most messages the server answers one multi_last
// with (nats-server getDirectMulti's maxAllowedResponses); over it, it
// answers 413 (ErrTooMany).
const MaxMultiLast = 1024

// ErrTooMany is a multi_last that matched more subjects than MaxMultiLast.
var ErrTooMany = errors.New("directget: too many results")

// Msg is one answer.
type Msg struct {
	Subject string
	Seq     uint64
	Header  nats.Header
	Data    []byte
}

// DefaultTimeout bounds a read whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// Get sends req to stream's direct get API and calls fn for each message
// answered, in order, until the end-of-batch marker; it returns the
// marker's pending count (matches left after the batch). Nothing matched is
// no error (0 messages, 0 pending).
//
// The answers arrive on a subscription whose channel holds the whole
// batch: nats.go's SubscribeSync allocates a 65,536-slot channel (512 KB)
// per subscription, which at one read per index page was most of what a
// fan-out of a million users allocated. The server never sends more than
// the batch (at most MaxMultiLast for a multi_last) and the marker, so the
// channel cannot overflow.
func Get(ctx context.Context, nc *nats.Conn, stream string, req Request, fn func(Msg) error) (pending uint64, err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	size := MaxMultiLast
	if req.Batch > 0 && (req.Batch < size || len(req.MultiLast) == 0) {
		size = min(req.Batch, nats.DefaultMaxChanLen)
	}
	ch := make(chan *nats.Msg, size+2)
	inbox := nc.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return 0, fmt.Errorf("directget: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return 0, fmt.Errorf("directget: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("directget: %s: %w", stream, ctx.Err())
		}
		if status := m.Header.Get("Status"); status != "" {
			switch status {
			case "204": // end of batch
				pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
				return pending, nil
			case "404": // nothing matched
				return 0, nil
			case "413":
				return 0, ErrTooMany
			default:
				return 0, fmt.Errorf("directget: %s: status %s %s", stream, status, m.Header.Get("Description"))
			}
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("directget: %s: bad sequence header %q", stream, m.Header.Get("Nats-Sequence"))
		}
		if err := fn(Msg{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Header: m.Header, Data: m.Data}); err != nil {
			return 0, err
		}
	}
}
