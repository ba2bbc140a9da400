-- Suspend a JuliaRunJob: the operator deletes its running JuliaRun job (or holds back the
-- first submit); resume submits the next attempt.
obj.spec.suspend = true
return obj
