package lifecycle

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
