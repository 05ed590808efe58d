package lifecycle

import (
	"context"
	"time"
)

// Exported for the external tests (fuzzing the body decoders).
var (
	DecodeCredentialBody = decodeCredentialBody
	DecodeUserBody       = decodeUserBody
	DecodeEnabledBody    = decodeEnabledBody
)

// SetFault makes every derivation of the Service built from o call f at
// each of its steps (StageBeforeState …); an error stops it there.
func SetFault(o *Options, f func(stage string) error) { o.fault = f }

// Derivation steps a fault can stop at.
const (
	StageBeforeState  = stageBeforeState
	StageAfterState   = stageAfterState
	StageAfterPublish = stageAfterPublish
)

// ScheduleRefresh indexes credential c as due before exp, as the connect
// flow does (for loading many credentials without a flow each).
func (s *Service) ScheduleRefresh(ctx context.Context, p, u, c string, exp time.Time) error {
	kv, err := s.lifecycleKV(ctx)
	if err != nil {
		return err
	}
	return s.scheduleRefresh(ctx, kv, p, u, c, exp)
}
