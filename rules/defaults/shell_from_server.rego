package vigil.rules.shell_from_server

import data.vigil.lib.events

metadata := {
	"id": "VGL-EXEC-006",
	"name": "Shell spawned by a server",
	"description": "A shell started by a web server, a database or a language runtime serving requests (nginx, httpd, php-fpm, mysqld, postgres, redis-server, java, node, ...): a web shell or an injected command.",
	"severity": "high",
	"mitre": {"tactic": "TA0003 Persistence", "technique": "T1505.003 Web Shell"},
	"tags": ["shell", "lineage"],
	"events": ["process_exec"],
}

# Versioned names are listed: a prefix test on the parent's name would run
# on every exec, where a set lookup is indexed.
servers := {
	"nginx", "httpd", "apache", "apache2", "lighttpd", "caddy", "php-fpm", "php-fpm7.4", "php-fpm8.0", "php-fpm8.1",
	"php-fpm8.2", "php-fpm8.3", "php-fpm8.4", "php-cgi", "php-cgi8.2", "uwsgi", "gunicorn", "tomcat", "catalina", "jetty",
	"java", "node", "nodejs", "mysqld", "mariadbd", "postgres", "postmaster", "mongod", "redis-server", "memcached",
	"elasticsearch", "couchdb",
}

alert contains msg if {
	e := input.process_exec
	events.basename(e.parent.binary) in servers
	events.is_shell(e.process.binary)
	msg := sprintf("%s spawned %s %s", [e.parent.binary, e.process.binary, object.get(e.process, "arguments", "")])
}
