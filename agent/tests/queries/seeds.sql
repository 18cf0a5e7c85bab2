-- The hunts of the article sweep started from, verbatim, and the questions
-- the README asks. One statement per paragraph; the blank line separates them.

select * from users where username = 'douge';

select p.name, p.pid, s.remote_address, s.remote_port from process_open_sockets s join processes p using (pid) where s.remote_address = '61.135.169.80';

select * from process_open_sockets where pid in ( ( select pid from processes where name="bash" ) and ( select pid from processes where parent not in ( select pid from processes where name="sshd" ) ) ) and protocol=17 ;

select p.pid, p.name, p.parent, s.remote_address, s.remote_port from processes p join process_open_sockets s using (pid) where p.name = 'bash' and s.family = 2 and s.remote_address not in ('', '0.0.0.0', '127.0.0.1') and p.parent not in (select pid from processes where name = 'sshd');

SELECT u.username, a.key_file FROM users u CROSS JOIN authorized_keys a USING (uid);

select name, interval, executions, output_size, wall_time from osquery_schedule;

select split(cmdline, ' ', 0) as argv0, regex_match(cmdline, '--([a-z]+)', 1) as flag from processes where regex_match(cmdline, '--([a-z]+)', 1) is not null;

select community_id_v1(local_address, remote_address, local_port, remote_port, protocol) as community_id from process_open_sockets where remote_port != 0;

select name, sha256(name), md5(name), to_base64(name), inet_aton('10.0.0.1'), sqrt(pid), power(2, 10), log(pid) from processes where name REGEXP '^(sshd|bash|init|systemd)$';
