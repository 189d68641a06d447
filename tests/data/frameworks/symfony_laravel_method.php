<?php
// The method a Symfony application with HTTP method parameter override enabled (as
// Laravel enables it) would route this request as, reading `_method` where Laravel's
// input source puts it: the JSON body when the Content-Type contains `/json` or `+json`,
// else the form or multipart body PHP parsed into $_POST, then the query. Served by `php -S` in
// tests/framework_overrides.rs; the response body is the method.
$method = $_SERVER['REQUEST_METHOD'];
if ($method === 'POST') {
    $type = $_SERVER['CONTENT_TYPE'] ?? '';
    if (str_contains($type, '/json') || str_contains($type, '+json')) {
        $input = json_decode(file_get_contents('php://input'), true);
        $override = is_array($input) ? ($input['_method'] ?? null) : null;
    } else {
        $override = $_POST['_method'] ?? null;
    }
    // Symfony: `$request->request->get('_method', $request->query->get('_method'))`.
    $override = $override ?? ($_GET['_method'] ?? null);
    // Symfony takes letters only (anything else is a SuspiciousOperationException).
    if (is_string($override) && preg_match('/^[A-Z]++$/D', strtoupper($override))) {
        $method = strtoupper($override);
    }
}
header('Content-Type: text/plain');
echo $method;
