-- KEYS[1] a tag set. ARGV[1] state key head ("P:{"), [2] state key middle ("}:s:"),
-- [3] the tag, [4] SSCAN cursor, [5] SSCAN count.
-- Replies: {next cursor, {ids whose head carries the tag}}; drops the other members.
local page = redis.call('SSCAN', KEYS[1], ARGV[4], 'COUNT', ARGV[5])
local live = {}
for _, id in ipairs(page[2]) do
  local s = ARGV[1] .. string.sub(redis.sha1hex(id), 1, HASH_TAG_LENGTH) .. ARGV[2] .. id
  local found = false
  local t = redis.call('HGET', s, 'tags')
  if t then
    local ok, tags = pcall(cjson.decode, t)
    if ok and type(tags) == 'table' then
      for _, tag in ipairs(tags) do
        if tag == ARGV[3] then found = true break end
      end
    end
  end
  if found then live[#live + 1] = id else redis.call('SREM', KEYS[1], id) end
end
return {page[1], live}
