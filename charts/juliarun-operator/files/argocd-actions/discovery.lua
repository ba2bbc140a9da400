-- Argo CD resource actions for juliarun.dev/JuliaRunJob: which ones to offer.
--
-- suspend and resume set spec.suspend, as Argo CD's actions for batch/v1 Job do. They
-- apply to the batch types only (the API server refuses spec.suspend on the others) and
-- not once the job has ended (condition Complete or Failed).
local actions = {}
actions["suspend"] = {["disabled"] = true}
actions["resume"] = {["disabled"] = true}

local batch = {JuliaBatch = true, JuliaParBatch = true, JuliaParBatchWorkers = true,
               PkgBuilder = true, Generic = true}
local spec = obj.spec or {}
if not batch[spec.type] then
  return actions
end

for _, c in ipairs((obj.status or {}).conditions or {}) do
  if (c.type == "Complete" or c.type == "Failed") and c.status == "True" then
    return actions
  end
end

if spec.suspend == true then
  actions["resume"]["disabled"] = false
else
  actions["suspend"]["disabled"] = false
end
return actions
