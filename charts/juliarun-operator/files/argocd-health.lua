-- Argo CD health check for juliarun.dev/JuliaRunJob.
--
-- The operator writes kstatus-style conditions (Ready, Reconciling, Stalled), for batch
-- jobs also Job's (Complete, Failed, Suspended), and a phase. Argo CD runs this with the
-- live object as `obj` and wants {status, message}:
--   Healthy      Ready or Complete is True (AtScale, Running, Completed); under
--                managementPolicy Observe too, once the job is mirrored
--   Degraded     Stalled or Failed is True (JobFailed, BackoffLimitExceeded,
--                DeadlineExceeded, JobMissing, InvalidSpec, Conflict, SubmitRefused,
--                UpdateRefused, ObserveRefused, JobNotFound, TakeoverRefused), or phase Failed
--   Suspended    phase Paused (the pause annotation is set) or Suspended (spec.suspend)
--   Progressing  anything else, and whenever the status describes an older
--                generation than the spec (the operator has not caught up yet)
local hs = {}

local function condition(conditions, ctype)
  for _, c in ipairs(conditions or {}) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function say(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the job"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status.conditions, "Ready")
local stalled = condition(status.conditions, "Stalled")
local reconciling = condition(status.conditions, "Reconciling")
local complete = condition(status.conditions, "Complete")
local failed = condition(status.conditions, "Failed")
local phase = status.phase

if failed ~= nil and failed.status == "True" then
  hs.status = "Degraded"
  hs.message = say(failed, "Job failed")
  return hs
end

if (stalled ~= nil and stalled.status == "True") or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = say(stalled, "Job failed")
  return hs
end

if phase == "Paused" or phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = say(ready, phase)
  return hs
end

if complete ~= nil and complete.status == "True" then
  hs.status = "Healthy"
  hs.message = say(complete, "Completed")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = say(ready, phase or "Ready")
  return hs
end

hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = say(reconciling, phase or "Reconciling")
else
  hs.message = say(ready, phase or "Reconciling")
end
return hs
