-- Resume a suspended JuliaRunJob: the operator submits its next attempt.
obj.spec.suspend = false
return obj
