-- Apply ARGV[4] (ttl in ms, '' for none) to every key. Replies: 1 if the state exists, else 0.
if redis.call('EXISTS', S) == 0 then return 0 end
apply_ttl(ARGV[4])
return 1
