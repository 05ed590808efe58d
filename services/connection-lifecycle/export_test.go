package lifecycle

// Exported for the external tests (fuzzing the body decoders).
var (
	DecodeCredentialBody = decodeCredentialBody
	DecodeUserBody       = decodeUserBody
	DecodeEnabledBody    = decodeEnabledBody
)
