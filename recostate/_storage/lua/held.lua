-- Which pieces the state holds, for a client that knows nothing of it yet
-- (a save then compresses and sends only the others). ARGV[4..] piece ids.
-- Replies: {dictionary id or false, dictionary frame or false, stored size of
--   each piece asked, 0 where it is not held}
local out = {redis.call('HGET', C, 'i') or false, false}
if out[1] then out[2] = redis.call('HGET', C, 'd') or false end
for i = 4, #ARGV do out[#out + 1] = redis.call('HSTRLEN', C, ARGV[i]) end
return out
