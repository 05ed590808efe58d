package lifecycle

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/directory"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// The connected user's own view of the directory, in the shapes the
// mirrored product's SDK (`@useparagon/connect`) reads when
// paragon.authenticate runs: GET /projects/{p}/sdk/me (the user, their
// credentials per integration), PATCH of the same path (their metadata) and
// GET /projects/{p}/sdk/integrations (the project's integrations with their
// workflows). The SDK checks both before paragon.workflow(id) sends
// anything: some integration must list the workflow in
// configs[0].values.workflowMeta, and the user must hold a VALID credential
// of that integration.

// NoIntegration is the integration type under which the SDK routes list the
// workflows that need no integration (the SDK files every workflow under
// one). It is not a valid integration id, so it never collides with one.
// The user is its one credential (NoIntegrationCredential), VALID once the
// user exists in the directory.
const (
	NoIntegration           = "_switchboard"
	NoIntegrationName       = "Switchboard"
	NoIntegrationCredential = "_user"
)

// SDKCredential is one of a user's credentials as the SDK reads it.
type SDKCredential struct {
	ID string `json:"id"`
	// ExternalID repeats ID: the SDK looks a selectedCredentialId that is
	// not a UUID up by externalId, and Switchboard's ids are not UUIDs.
	ExternalID     string             `json:"externalId"`
	Status         string             `json:"status"`
	ProviderID     string             `json:"providerId,omitempty"`
	DateCreated    time.Time          `json:"dateCreated,omitzero"`
	DateUpdated    time.Time          `json:"dateUpdated,omitzero"`
	Configurations []SDKConfiguration `json:"configurations"`
	// Subscriptions are the credential's webhook subscriptions at the
	// provider (subscriptions.go), as on its API view.
	Subscriptions []SubscriptionStatus `json:"subscriptions,omitempty"`
}

// SDKConfiguration is a credential's one (default) configuration: the
// enablement of each workflow of its integration. The SDK needs one to act
// on a selectedCredentialId.
type SDKConfiguration struct {
	ID                  string                         `json:"id"`
	ExternalID          string                         `json:"externalId"`
	ConnectCredentialID string                         `json:"connectCredentialId"`
	IsDefault           bool                           `json:"isDefault"`
	WorkflowSettings    map[string]SDKWorkflowSettings `json:"workflowSettings"`
	SharedSettings      map[string]any                 `json:"sharedSettings"`
}

// SDKWorkflowSettings is one workflow's enablement for a credential.
type SDKWorkflowSettings struct {
	Enabled  bool           `json:"enabled"`
	Settings map[string]any `json:"settings"`
}

// SDKIntegrationState is the user's state of one integration.
type SDKIntegrationState struct {
	// Enabled: the user has a VALID credential of the integration.
	Enabled bool `json:"enabled"`
	// CredentialID and CredentialStatus are the user's first VALID
	// credential of it (else the first one), empty when there is none.
	CredentialID     string          `json:"credentialId,omitempty"`
	CredentialStatus string          `json:"credentialStatus,omitempty"`
	AllCredentials   []SDKCredential `json:"allCredentials"`
	// ConfiguredWorkflows is the default credential's workflowSettings.
	ConfiguredWorkflows map[string]SDKWorkflowSettings `json:"configuredWorkflows"`
}

// SDKProject is the project as the SDK reads it.
type SDKProject struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// AccessibleFeatures is empty: the SDK's paid add-ons (headless
	// install, file pickers) talk to the mirrored product's own services.
	AccessibleFeatures []string `json:"accessibleFeatures"`
}

// SDKMe is GET /projects/{p}/sdk/me.
type SDKMe struct {
	ID           string                         `json:"id"`
	Project      SDKProject                     `json:"project"`
	Meta         map[string]any                 `json:"meta"`
	Resources    []SDKResource                  `json:"resources"`
	Integrations map[string]SDKIntegrationState `json:"integrations"`
}

// SDKIntegration is one entry of GET /projects/{p}/sdk/integrations.
type SDKIntegration struct {
	ID        string        `json:"id"`
	Type      string        `json:"type"`
	Name      string        `json:"name"`
	IsActive  bool          `json:"isActive"`
	Configs   []SDKConfig   `json:"configs"`
	Workflows []SDKWorkflow `json:"workflows"`
}

// SDKConfig is an integration's configuration; the SDK reads the first.
type SDKConfig struct {
	ID     string          `json:"id"`
	Values SDKConfigValues `json:"values"`
}

// SDKConfigValues lists the integration's workflows by id (workflowMeta is
// where the SDK finds a workflow's integration).
type SDKConfigValues struct {
	WorkflowMeta map[string]SDKWorkflow `json:"workflowMeta"`
}

// SDKWorkflow is one workflow as the SDK lists it.
type SDKWorkflow struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Description      string `json:"description"`
	IntegrationID    string `json:"integrationId"`
	TriggerType      string `json:"triggerType"`
	EnabledByDefault bool   `json:"enabledByDefault"`
}

// registerSDK mounts the SDK routes behind the project's CORS rule: a
// browser page calls them with the user's token.
func (s *Service) registerSDK(e *echo.Echo) {
	cors := s.access.CORS()
	const me = "/projects/:p/sdk/me"
	e.GET(me, s.getSDKMe, cors)
	e.PATCH(me, s.patchSDKMe, cors)
	e.OPTIONS(me, httpx.Preflight(http.MethodGet, http.MethodPatch), cors)
	const integrations = "/projects/:p/sdk/integrations"
	e.GET(integrations, s.getSDKIntegrations, cors)
	e.OPTIONS(integrations, httpx.Preflight(http.MethodGet), cors)
}

// sdkCaller authenticates an SDK call: a user token acts for its user, an
// API key for the user named by X-Switchboard-User.
func (s *Service) sdkCaller(c *echo.Context) (call, error) {
	p, err := pathParam(c, "p")
	if err != nil {
		return call{}, err
	}
	pr, err := s.access.ExistingProject(c.Request(), p)
	if err != nil {
		return call{}, err
	}
	u, err := access.ActingUser(pr, c.Request().Header.Get("X-Switchboard-User"))
	if err != nil {
		return call{}, err
	}
	return call{project: p, user: u}, nil
}

// sdkIntegration is an integration with the workflows filed under it.
type sdkIntegration struct {
	id, name  string
	workflows []*workflow.Workflow
}

// sdkIntegrations lists the integrations the SDK shows, by id: every
// integration the project applied or one of its workflows uses, then
// NoIntegration when some workflow uses none.
func (s *Service) sdkIntegrations(p string) []sdkIntegration {
	byID := map[string]*sdkIntegration{}
	get := func(id string) *sdkIntegration {
		if in, ok := byID[id]; ok {
			return in
		}
		in := &sdkIntegration{id: id, name: id}
		if id == NoIntegration {
			in.name = NoIntegrationName
		} else if doc, ok := s.cat.Integration(p, id); ok && doc.Effective().Name != "" {
			in.name = doc.Effective().Name
		}
		byID[id] = in
		return in
	}
	for _, in := range s.cat.Integrations(p) {
		get(in.ID)
	}
	for _, w := range s.cat.Workflows(p) {
		id := w.Integration
		if id == "" {
			id = NoIntegration
		}
		in := get(id)
		in.workflows = append(in.workflows, w)
	}
	out := make([]sdkIntegration, 0, len(byID))
	for _, in := range byID {
		out = append(out, *in)
	}
	sort.Slice(out, func(i, j int) bool {
		// NoIntegration last, the rest by id.
		if (out[i].id == NoIntegration) != (out[j].id == NoIntegration) {
			return out[j].id == NoIntegration
		}
		return out[i].id < out[j].id
	})
	return out
}

// sdkWorkflow is w as the SDK lists it; a workflow without a name shows
// its id (the SDK displays names).
func sdkWorkflow(w *workflow.Workflow, integration string) SDKWorkflow {
	name := w.Name
	if name == "" {
		name = w.ID
	}
	return SDKWorkflow{ID: w.ID, Name: name, IntegrationID: integration, TriggerType: w.Trigger.Type, EnabledByDefault: w.IsEnabledByDefault()}
}

func (s *Service) getSDKIntegrations(c *echo.Context) error {
	cl, err := s.sdkCaller(c)
	if err != nil {
		return err
	}
	ins := s.sdkIntegrations(cl.project)
	out := make([]SDKIntegration, 0, len(ins))
	for _, in := range ins {
		e := SDKIntegration{ID: in.id, Type: in.id, Name: in.name, IsActive: true, Workflows: []SDKWorkflow{}}
		meta := map[string]SDKWorkflow{}
		for _, w := range in.workflows {
			sw := sdkWorkflow(w, in.id)
			e.Workflows = append(e.Workflows, sw)
			meta[w.ID] = sw
		}
		e.Configs = []SDKConfig{{ID: in.id, Values: SDKConfigValues{WorkflowMeta: meta}}}
		out = append(out, e)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Service) getSDKMe(c *echo.Context) error {
	cl, err := s.sdkCaller(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// A user with a valid token who is not in the directory yet is a user
	// with nothing connected, not an error: the SDK authenticates them.
	u, err := s.dir.User(ctx, cl.project, cl.user)
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return storeErr(err)
	}
	creds, err := s.dir.Credentials(ctx, cl.project, cl.user)
	if err != nil {
		return storeErr(err)
	}
	resources, err := s.sdkResources(ctx, cl.project, creds)
	if err != nil {
		return storeErr(err)
	}
	proj, _ := s.cat.Project(cl.project)
	out := SDKMe{
		ID:           cl.user,
		Project:      SDKProject{ID: cl.project, AccessibleFeatures: []string{}},
		Meta:         map[string]any{},
		Resources:    resources,
		Integrations: map[string]SDKIntegrationState{},
	}
	if proj != nil {
		out.Project.Name = proj.Name
	}
	if u != nil && u.Metadata != nil {
		out.Meta = u.Metadata
	}
	subs := s.subscriptionsByCredential(ctx, cl.project, cl.user)
	for _, in := range s.sdkIntegrations(cl.project) {
		st := integrationState(in, u, creds)
		for i := range st.AllCredentials {
			st.AllCredentials[i].Subscriptions = subs[st.AllCredentials[i].ID]
		}
		out.Integrations[in.id] = st
	}
	return c.JSON(http.StatusOK, out)
}

// integrationState is the user's state of integration in: their
// credentials of it, or for NoIntegration the user themself.
func integrationState(in sdkIntegration, u *directory.User, creds []*directory.Credential) SDKIntegrationState {
	st := SDKIntegrationState{AllCredentials: []SDKCredential{}, ConfiguredWorkflows: map[string]SDKWorkflowSettings{}}
	settings := func(enabled func(*workflow.Workflow) bool) map[string]SDKWorkflowSettings {
		out := map[string]SDKWorkflowSettings{}
		for _, w := range in.workflows {
			out[w.ID] = SDKWorkflowSettings{Enabled: enabled(w), Settings: map[string]any{}}
		}
		return out
	}
	add := func(id, status, provider string, created, updated time.Time, shared map[string]any, ws map[string]SDKWorkflowSettings) {
		if shared == nil {
			shared = map[string]any{}
		}
		st.AllCredentials = append(st.AllCredentials, SDKCredential{
			ID: id, ExternalID: id, Status: status, ProviderID: provider, DateCreated: created, DateUpdated: updated,
			Configurations: []SDKConfiguration{{ID: id, ExternalID: id, ConnectCredentialID: id, IsDefault: true, WorkflowSettings: ws, SharedSettings: shared}},
		})
		if st.CredentialID == "" || (status == directory.CredentialValid && st.CredentialStatus != directory.CredentialValid) {
			st.CredentialID, st.CredentialStatus, st.ConfiguredWorkflows = id, status, ws
		}
		st.Enabled = st.Enabled || status == directory.CredentialValid
	}
	if in.id == NoIntegration {
		if u != nil {
			add(NoIntegrationCredential, directory.CredentialValid, "", u.CreatedAt, u.UpdatedAt, nil, settings(u.Enabled))
		}
		return st
	}
	for _, cr := range creds {
		if cr.Integration == in.id {
			add(cr.ID, cr.Status, cr.ProviderAccountID, cr.CreatedAt, cr.UpdatedAt, cr.Settings, settings(cr.Enabled))
		}
	}
	return st
}

// patchSDKMe is PATCH /projects/{p}/sdk/me {"meta": {...}}: the keys given
// replace the user's metadata keys of the same name, the others stay (the
// SDK merges the same way on its side). The user is created when absent:
// authenticating with metadata is how the SDK introduces a user.
func (s *Service) patchSDKMe(c *echo.Context) error {
	cl, err := s.sdkCaller(c)
	if err != nil {
		return err
	}
	body, err := httpx.ReadBody(c, s.maxBody)
	if err != nil {
		return err
	}
	var req struct {
		Meta json.RawMessage `json:"meta"`
	}
	if err := decodeObject(body, &req); err != nil {
		return err
	}
	meta, has, err := optionalObject("meta", req.Meta)
	if err != nil {
		return err
	}
	if !has || meta == nil {
		return apierr.BadRequest("missing_field", "meta (a JSON object) is required").WithField("meta")
	}
	ctx := c.Request().Context()
	u, rev, err := s.dir.UpdateUser(ctx, cl.project, cl.user, func(u *directory.User) error {
		merged := make(map[string]any, len(u.Metadata)+len(meta))
		for k, v := range u.Metadata {
			merged[k] = v
		}
		for k, v := range meta {
			merged[k] = v
		}
		u.Metadata = merged
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if err := s.waitVisible(ctx, rev); err != nil {
		return err
	}
	s.logger.Info("user metadata patched", "project", cl.project, "user", cl.user, "keys", len(meta))
	return c.JSON(http.StatusOK, map[string]any{"id": u.ID, "meta": u.Metadata})
}
