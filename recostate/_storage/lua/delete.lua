-- Delete every key of the state. Replies: 1 if it existed, else 0.
if redis.call('EXISTS', S) == 0 then return 0 end
delete_state()
return 1
