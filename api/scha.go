package api

// SchaErr is a scha_err_t value: the exit status of the scha_* commands
// and the answer code of scha_control.
type SchaErr int

// scha_err_t values of Sun Cluster 3.x.
const (
	SchaNoErr    SchaErr = 0
	SchaNoMem    SchaErr = 1
	SchaHandle   SchaErr = 2
	SchaInval    SchaErr = 3 // invalid arguments
	SchaTag      SchaErr = 4 // unknown optag
	SchaReconf   SchaErr = 5 // the cluster is reconfiguring; retry
	SchaAccess   SchaErr = 6 // permission denied
	SchaSeqID    SchaErr = 7
	SchaDepend   SchaErr = 8 // a dependency forbids it
	SchaState    SchaErr = 9 // the object is in the wrong state
	SchaMethod   SchaErr = 10
	SchaNode     SchaErr = 11 // unknown node
	SchaRG       SchaErr = 12 // unknown or unusable resource group
	SchaRT       SchaErr = 13 // unknown resource type
	SchaRsrc     SchaErr = 14 // unknown resource
	SchaProp     SchaErr = 15 // unknown property
	SchaChecks   SchaErr = 16 // sanity checks or Failover_mode refused the request
	SchaRStatus  SchaErr = 17
	SchaInternal SchaErr = 18
)

// ControlRequest is the body of POST /v1/rgm/control (scha_control).
type ControlRequest struct {
	Op       string `json:"op"` // GIVEOVER, RESTART, RESOURCE_RESTART, ...
	Group    string `json:"group"`
	Resource string `json:"resource"`
}

// ControlResponse answers it: Code 0 when accepted (and done).
type ControlResponse struct {
	Code    SchaErr `json:"code"`
	Message string  `json:"message,omitempty"`
}

// StatusRequest is the body of POST /v1/rgm/resources/{r}/status
// (scha_resource_setstatus).
type StatusRequest struct {
	Group   string `json:"group,omitempty"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}
