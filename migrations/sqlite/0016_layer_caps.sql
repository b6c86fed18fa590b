-- Per-school / per-classroom video layer caps (issue 19 item 2): the highest simulcast layer a
-- classroom's viewers get, by rank (0 = the lowest layer, 1 = the middle one; NULL = no cap).
-- A satellite school or a classroom on a thin line is held to a lower layer whatever its
-- estimate says. The classroom's own cap wins over its school's.
ALTER TABLE schools ADD COLUMN max_video_layer INTEGER CHECK (max_video_layer BETWEEN 0 AND 2);
ALTER TABLE classrooms ADD COLUMN max_video_layer INTEGER CHECK (max_video_layer BETWEEN 0 AND 2);
