// Package openapi holds the OpenAPI 3.1 document of Switchboard's whole HTTP
// API (openapi.yaml, embedded in the binary) and serves it as JSON at
// GET /openapi.json. The document is written by hand; openapi_test.go keeps
// it honest against the routes the roles actually register and against
// recorded responses.
package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v5"
	"go.yaml.in/yaml/v3"
)

// Path is where the document is served.
const Path = "/openapi.json"

//go:embed openapi.yaml
var source []byte

// YAML is the document as kept in the repository.
func YAML() []byte { return append([]byte(nil), source...) }

// JSON is the document converted to JSON (anchors and merge keys resolved).
func JSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(source, &doc); err != nil {
		return nil, fmt.Errorf("openapi: parse openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: encode JSON: %w", err)
	}
	return b, nil
}

// Register mounts GET /openapi.json on e. The JSON is built once, here, so
// a document that does not parse fails the process's start instead of a
// request.
func Register(e *echo.Echo) error {
	b, err := JSON()
	if err != nil {
		return err
	}
	e.GET(Path, func(c *echo.Context) error {
		// Public and the same for every caller: any page may read it.
		c.Response().Header().Set("Access-Control-Allow-Origin", "*")
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
		return c.Blob(http.StatusOK, "application/json", b)
	})
	return nil
}
