package subjects

// Kind tokens of the trigger kinds other than the two in subjects.go, one
// per Kind of proto/switchboard/v1/envelope.proto. They are the fourth token
// of a trigger subject, so a consumer can filter on a kind
// (sb.trigger.*.schedule.>) without decoding envelopes.
//
// The mapping from the protobuf enum lives in pkg/trigger, not here: this
// package stays free of the proto module so that any client can import it.
const (
	KindIntegration        = "integration"
	KindIntegrationEnabled = "integration_enabled"
	KindSchedule           = "schedule"
	KindAPIResource        = "api_resource"
	KindLifecycle          = "lifecycle"
)

// KindTokens returns every trigger kind token, in the order of the Kind
// enum. It returns a new slice on each call.
func KindTokens() []string {
	return []string{KindAppEvent, KindRequest, KindIntegration, KindIntegrationEnabled,
		KindSchedule, KindAPIResource, KindLifecycle}
}
