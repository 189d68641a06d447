# Rack::MethodOverride (what Rails runs): the application sees the method `_method` in a
# POST's form or multipart body names. Served by `rackup -s webrick` in
# tests/framework_overrides.rs; the response body is the method the application saw.
use Rack::MethodOverride
run lambda { |env| [200, { 'Content-Type' => 'text/plain' }, [env['REQUEST_METHOD']]] }
