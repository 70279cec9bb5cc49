-- Bound by every per-state script. KEYS: the state's keys in
-- recostate._storage.keys.STATE_KINDS order. ARGV[1] the state id (as tag
-- sets store it), ARGV[2] the tag key base, ARGV[3] '1' when tag sets are kept
-- outside the scripts (on a cluster, where they live in other hash slots).
-- Scripts do every read and check before their first write: Redis does not
-- roll a script back when it fails halfway.
local S, L, V, C, R, D = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local SID, TBASE, TAGS_OUTSIDE = ARGV[1], ARGV[2], ARGV[3] == '1'
