package ingress

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/switchboard-hq/switchboard/pkg/access"
	"github.com/switchboard-hq/switchboard/pkg/apierr"
	"github.com/switchboard-hq/switchboard/pkg/auth"
	"github.com/switchboard-hq/switchboard/pkg/catalog"
	"github.com/switchboard-hq/switchboard/pkg/envelope"
	"github.com/switchboard-hq/switchboard/pkg/httpx"
	"github.com/switchboard-hq/switchboard/pkg/workflow"
)

// ProjectRequest is the body of PUT /v1/projects/{p}.
type ProjectRequest struct {
	Name string `json:"name"`
	// UserTokenKeys replaces the project's PEM public keys when present.
	UserTokenKeys *[]string `json:"userTokenKeys"`
	// AllowedOrigins replaces the origins of the pages that may call the
	// project's SDK routes from a browser when present ("*": any).
	AllowedOrigins *[]string `json:"allowedOrigins"`
}

// ProjectView is a project as the API shows it (no key hashes).
type ProjectView struct {
	ID             string    `json:"id"`
	Name           string    `json:"name,omitempty"`
	APIKeys        []string  `json:"apiKeys"`
	UserTokenKeys  []string  `json:"userTokenKeys"`
	AllowedOrigins []string  `json:"allowedOrigins"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

func viewProject(p *catalog.Project) ProjectView {
	v := ProjectView{ID: p.ID, Name: p.Name, UserTokenKeys: p.UserTokenKeys, AllowedOrigins: p.AllowedOrigins,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, APIKeys: []string{}}
	if v.UserTokenKeys == nil {
		v.UserTokenKeys = []string{}
	}
	if v.AllowedOrigins == nil {
		v.AllowedOrigins = []string{}
	}
	for _, k := range p.APIKeys {
		v.APIKeys = append(v.APIKeys, k.Prefix+"…")
	}
	return v
}

func (s *Service) putProject(c *echo.Context) error {
	if err := s.opts.Access.Admin(c.Request()); err != nil {
		return err
	}
	p := c.Param("p")
	if !workflow.ValidID(p) {
		return apierr.BadRequest("invalid_field", "project ids match [a-z0-9][a-z0-9_-]* (at most 63 characters)").WithField("project")
	}
	body, err := httpx.ReadBody(c, s.opts.MaxBody)
	if err != nil {
		return err
	}
	var req ProjectRequest
	if len(body) > 0 {
		if err := httpx.DecodeJSON(body, &req); err != nil {
			return err
		}
	}
	if req.UserTokenKeys != nil {
		for _, pem := range *req.UserTokenKeys {
			if _, err := auth.ParsePublicKeyPEM([]byte(pem)); err != nil {
				return apierr.BadRequest("invalid_field", "userTokenKeys: %v", err).WithField("userTokenKeys")
			}
		}
	}
	var origins []string
	if req.AllowedOrigins != nil {
		origins = []string{}
		for i, o := range *req.AllowedOrigins {
			n, err := httpx.NormalizeOrigin(o)
			if err != nil {
				return apierr.BadRequest("invalid_field", "allowedOrigins: %v", err).WithField(fmt.Sprintf("allowedOrigins[%d]", i))
			}
			if !slices.Contains(origins, n) {
				origins = append(origins, n)
			}
		}
	}
	proj, rev, err := s.opts.Catalog.UpdateProject(c.Request().Context(), p, func(pr *catalog.Project) error {
		if req.AllowedOrigins != nil {
			pr.AllowedOrigins = origins
		}
		if req.Name != "" {
			pr.Name = req.Name
		}
		if req.UserTokenKeys != nil {
			pr.UserTokenKeys = *req.UserTokenKeys
		}
		return nil
	})
	if err != nil {
		return apierr.Unavailable(err)
	}
	if err := s.waitCatalog(c, rev); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewProject(proj))
}

// getProject shows a project to the operator or to the project's own API
// key (key prefixes only, never their hashes).
func (s *Service) getProject(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	p, ok := s.opts.Catalog.Project(pr.Project)
	if !ok {
		return apierr.NotFound("project_not_found", "project %q does not exist", pr.Project)
	}
	return c.JSON(http.StatusOK, viewProject(p))
}

// APIKeyCreated is the one time the key itself is shown.
type APIKeyCreated struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Prefix string `json:"prefix"`
}

func (s *Service) createAPIKey(c *echo.Context) error {
	if err := s.opts.Access.Admin(c.Request()); err != nil {
		return err
	}
	p := c.Param("p")
	if _, ok := s.opts.Catalog.Project(p); !ok {
		return apierr.NotFound("project_not_found", "project %q does not exist; create it with PUT /v1/projects/%s", p, p)
	}
	key, err := auth.GenerateAPIKey()
	if err != nil {
		return apierr.Internal(err)
	}
	out := APIKeyCreated{ID: envelope.NewID(), Key: key, Prefix: key[:10]}
	_, rev, err := s.opts.Catalog.UpdateProject(c.Request().Context(), p, func(pr *catalog.Project) error {
		pr.APIKeys = append(pr.APIKeys, catalog.APIKey{ID: out.ID, Hash: auth.HashAPIKey(key), Prefix: out.Prefix, CreatedAt: time.Now().UTC()})
		return nil
	})
	if err != nil {
		return apierr.Unavailable(err)
	}
	if err := s.waitCatalog(c, rev); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

// ApplyResult lists what an apply stored.
type ApplyResult struct {
	Applied  []AppliedDoc `json:"applied"`
	Revision uint64       `json:"revision"`
}

type AppliedDoc struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (s *Service) apply(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	body, err := httpx.ReadBody(c, s.opts.MaxBody)
	if err != nil {
		return err
	}
	objs, err := s.ParseApply(body, pr.Project)
	if err != nil {
		return err
	}
	rev, err := s.opts.Catalog.Apply(c.Request().Context(), objs)
	if err != nil {
		return apierr.Unavailable(err)
	}
	if err := s.waitCatalog(c, rev); err != nil {
		return err
	}
	res := ApplyResult{Revision: rev, Applied: make([]AppliedDoc, len(objs))}
	for i, o := range objs {
		res.Applied[i] = AppliedDoc{Kind: o.DocKind(), Name: o.DocName()}
	}
	return c.JSON(http.StatusOK, res)
}

// ParseApply parses and validates an apply body for project p, including
// references between documents: an app_event workflow must name an event
// declared in the same apply or already in the catalog.
func (s *Service) ParseApply(body []byte, p string) ([]workflow.Object, error) {
	objs, err := workflow.Parse(body, p)
	var pe *workflow.ParseError
	if errors.As(err, &pe) {
		return nil, invalidDocuments(pe)
	}
	if err != nil {
		return nil, apierr.BadRequest("invalid_documents", "%v", err)
	}
	declared := map[string]bool{}
	for _, o := range objs {
		if e, ok := o.(*workflow.AppEvent); ok {
			declared[e.Name] = true
		}
	}
	pe = &workflow.ParseError{}
	for i, o := range objs {
		w, ok := o.(*workflow.Workflow)
		if !ok || w.Trigger.Type != workflow.TriggerAppEvent || declared[w.Trigger.Event] {
			continue
		}
		if _, ok := s.opts.Catalog.AppEvent(p, w.Trigger.Event); !ok {
			pe.Docs = append(pe.Docs, workflow.DocError{Index: i, Kind: w.DocKind(), Name: w.ID, Problems: workflow.Problems{{
				Field: "trigger.event", Message: "event \"" + w.Trigger.Event + "\" is not declared; add a kind: AppEvent document",
			}}})
		}
	}
	// An integration trigger must name an integration that receives
	// webhooks (applied here, the project's, or a built-in) and only the
	// params its manifest declares: otherwise it would never run.
	pe.Docs = append(pe.Docs, workflow.CheckIntegrationTriggers(objs, func(id string) (*workflow.Integration, bool) {
		return s.opts.Catalog.Integration(p, id)
	})...)
	if len(pe.Docs) > 0 {
		return nil, invalidDocuments(pe)
	}
	return objs, nil
}

func invalidDocuments(pe *workflow.ParseError) error {
	return apierr.BadRequest("invalid_documents", "%d document(s) are invalid; nothing was applied", len(pe.Docs)).WithDetails(pe.Docs)
}

func (s *Service) listWorkflows(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	ws := s.opts.Catalog.Workflows(pr.Project)
	if ws == nil {
		ws = []*workflow.Workflow{}
	}
	return c.JSON(http.StatusOK, map[string]any{"workflows": ws})
}

func (s *Service) getWorkflow(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	w, ok := s.opts.Catalog.Workflow(pr.Project, c.Param("w"))
	if !ok {
		return apierr.NotFound("workflow_not_found", "workflow %q does not exist", c.Param("w"))
	}
	return c.JSON(http.StatusOK, w)
}

func (s *Service) deleteWorkflow(c *echo.Context) error {
	pr, err := s.projectCaller(c)
	if err != nil {
		return err
	}
	if err := access.ServerSide(pr); err != nil {
		return err
	}
	w := c.Param("w")
	if !workflow.ValidID(w) {
		return apierr.NotFound("workflow_not_found", "workflow %q does not exist", w)
	}
	rev, err := s.opts.Catalog.DeleteWorkflow(c.Request().Context(), pr.Project, w)
	if errors.Is(err, catalog.ErrNotFound) {
		return apierr.NotFound("workflow_not_found", "workflow %q does not exist", w)
	}
	if err != nil {
		return apierr.Unavailable(err)
	}
	if err := s.waitCatalog(c, rev); err != nil {
		return err
	}
	return noContent(c)
}
