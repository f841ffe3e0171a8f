-- A decision weighs the plug-ins that ended in the last minutes too (plug_in_store.ended_since):
-- their cars may still look plugged in while a late delivery is on its way.
CREATE INDEX plug_ins_ended_recent ON plug_ins (ended_at) WHERE ended_at IS NOT NULL;
